// Package onnxpb reads and writes the part of the ONNX protobuf format
// (onnx.proto3) that benchtop needs, with protowire and no generated code:
// a model's graph inputs and outputs (element types and dims, symbolic dims
// read as unknown), its metadata, and enough of nodes and initializers to
// write small models such as the sample MLPs.
//
// Fields it does not model are skipped when reading and never written, so a
// model read and written again loses them: the reader is for describing
// models, the writer for generating them, not for editing third-party files.
package onnxpb
