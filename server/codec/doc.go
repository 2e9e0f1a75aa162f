// Package codec is the front ends' wire format for values: the ndarray
// JSON codec (numpy's nested lists and KServe v2's flat "data" lists) and
// the example values that pre-fill a test input or a curl line.
//
// The HTTP server, the workbench and the bench command all read and write
// bodies through it; the engine never does, it sees only tensor values.
// It lives under server because HTTP is the format's home, and it imports
// only engine/tensor so that any front end can use it.
package codec
