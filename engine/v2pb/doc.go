// Package v2pb is the wire of the Open Inference Protocol (KServe v2) over
// gRPC: the messages and service stubs generated from inference.proto
// (`make proto`), and the raw tensor layout that gRPC's raw contents and
// the HTTP binary data extension share (raw.go). The server serves it and
// remote runners call it; it imports only engine/tensor.
package v2pb
