// Package codec is how the front ends read and write bodies: one rule for
// the HTTP front end, the workbench's test input and benchtop bench in
// process, so that all three accept and refuse the same bodies.
//
// Decode reads a request body by its API's IO kind (text, json, ndarray)
// against the method's input signature, Encode writes a result, Example
// builds a body that Decode accepts. DecodeInputs, EncodeOutputs and
// ExampleInputs do the same for a method of any number of inputs and
// outputs: an object body ({"input_ids": [[…]], "attention_mask": [[…]]})
// keyed by name, or one value by Decode for a method of one. NamedValues
// is the one rule for gathering named inputs, shared with KServe v2. Underneath is the ndarray JSON codec
// (numpy's nested lists, KServe v2's flat "data" lists) and ExampleValue.
//
// The engine never encodes: it sees only tensor values. The package lives
// under server because HTTP is the format's home; it imports the engine
// only for its IO kinds and error values, so any front end can use it.
package codec
