package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/engine/v2pb"
)

// Triton's binary data extension of the Open Inference Protocol: a request
// or an answer is a JSON header followed by raw tensors, so that a tensor
// crosses the wire as its bytes instead of as decimal text. The header's
// length is in an HTTP header; each tensor sent raw says its length in
// parameters.binary_data_size, and the raw tensors follow the JSON in the
// order the JSON lists them (v2pb.DecodeRaw has the layout).

// v2HeaderLength is the HTTP header that gives the JSON header's length.
const v2HeaderLength = v2pb.HeaderLengthHeader

// splitV2Body cuts a request body into its JSON header and its binary
// part, as the Inference-Header-Content-Length values say. Without one the
// body is all JSON and binary is nil; with one, binary is non-nil even
// when empty.
func splitV2Body(body []byte, lengths []string, contentType string) (header, binary []byte, err error) {
	switch len(lengths) {
	case 0:
		if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/octet-stream" {
			return nil, nil, errorf(http.StatusBadRequest,
				"an application/octet-stream request needs the %s header: the length in bytes of the JSON that starts the body, before the raw tensors", v2HeaderLength)
		}
		return body, nil, nil
	case 1:
	default:
		return nil, nil, errorf(http.StatusBadRequest, "%s is given %d times: send it once", v2HeaderLength, len(lengths))
	}
	n, err := strconv.Atoi(strings.TrimSpace(lengths[0]))
	if err != nil || n < 0 {
		return nil, nil, errorf(http.StatusBadRequest, "%s is %q: want the length in bytes of the JSON that starts the body (a whole number)", v2HeaderLength, lengths[0])
	}
	if n > len(body) {
		return nil, nil, errorf(http.StatusBadRequest, "%s is %d, but the body is only %s", v2HeaderLength, n, v2pb.ByteCount(len(body)))
	}
	binary = body[n:len(body):len(body)]
	if binary == nil {
		binary = []byte{}
	}
	return body[:n:n], binary, nil
}

// v2BinaryReader hands out the binary part of a request, input by input,
// and checks that the sizes the inputs give add up to it.
type v2BinaryReader struct {
	rest    []byte
	present bool     // the request has a binary part (it may be empty)
	taken   []string // "name (N bytes)" of each input read so far
	sum     int
}

// next is the raw data of input t, if t gives a binary_data_size; isRaw is
// false when t carries its data in JSON.
func (r *v2BinaryReader) next(t v2InferTensor) (data []byte, isRaw bool, err error) {
	p, ok := t.Parameters["binary_data_size"]
	if !ok {
		return nil, false, nil
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(p)), 10, 64)
	if err != nil || n < 0 {
		return nil, false, errorf(http.StatusBadRequest, "input %q: parameters.binary_data_size is %s: want the length of its raw data in bytes (a whole number)", t.Name, p)
	}
	if len(t.Data) > 0 && string(t.Data) != "null" {
		return nil, false, errorf(http.StatusBadRequest, "input %q has both data and parameters.binary_data_size: send one", t.Name)
	}
	if !r.present {
		return nil, false, errorf(http.StatusBadRequest,
			"input %q has parameters.binary_data_size, but the request has no %s header: send the JSON's length in it, and the raw data after the JSON", t.Name, v2HeaderLength)
	}
	if n > int64(len(r.rest)) {
		before := ""
		if len(r.taken) > 0 {
			before = " and the inputs before it (" + strings.Join(r.taken, ", ") + ")"
		}
		return nil, false, errorf(http.StatusBadRequest, "input %q: parameters.binary_data_size is %s, but only %s of binary data are left after the JSON header%s",
			t.Name, v2pb.ByteCount(int(min(n, 1<<62))), v2pb.ByteCount(len(r.rest)), before)
	}
	data, r.rest = r.rest[:n:n], r.rest[n:]
	r.sum += int(n)
	r.taken = append(r.taken, fmt.Sprintf("%s: %s", strconv.Quote(t.Name), v2pb.ByteCount(int(n))))
	return data, true, nil
}

// done checks that every byte of the binary part belonged to an input.
func (r *v2BinaryReader) done() error {
	if len(r.rest) == 0 {
		return nil
	}
	if len(r.taken) == 0 {
		return errorf(http.StatusBadRequest, "%s of binary data follow the JSON header, but no input gives a parameters.binary_data_size", v2pb.ByteCount(len(r.rest)))
	}
	return errorf(http.StatusBadRequest, "%s of binary data follow the JSON header, but the inputs' parameters.binary_data_size add up to %s (%s)",
		v2pb.ByteCount(r.sum+len(r.rest)), v2pb.ByteCount(r.sum), strings.Join(r.taken, ", "))
}

// decodeV2RawTensor reads one input sent as raw data against its spec.
func decodeV2RawTensor(t v2InferTensor, data []byte, in tensor.IOSpec) (tensor.Value, error) {
	dt, err := tensor.ParseDType(t.Datatype)
	if err != nil {
		return tensor.Value{}, errorf(http.StatusBadRequest, "input %q: %v", t.Name, err)
	}
	return v2InputValue(t.Name, dt, in, func(dt tensor.DType) (*tensor.Tensor, error) {
		return v2pb.DecodeRaw(data, dt, t.Shape)
	})
}

// v2BoolParam reads parameters[key], a boolean; set is false when absent.
// where names what the parameters belong to, for the error.
func v2BoolParam(params map[string]json.RawMessage, key, where string) (val, set bool, err error) {
	p, ok := params[key]
	if !ok {
		return false, false, nil
	}
	if err := json.Unmarshal(p, &val); err != nil {
		return false, false, errorf(http.StatusBadRequest, "%s: parameters.%s is %s: want true or false", where, key, p)
	}
	return val, true, nil
}

// writeV2Response answers 200 with a v2 inference response: JSON alone, or
// with raw outputs the JSON header then their bytes, its length in
// Inference-Header-Content-Length.
func writeV2Response(w http.ResponseWriter, header []byte, raw [][]byte) {
	h := w.Header()
	if raw == nil {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(header)
		return
	}
	size := len(header)
	for _, b := range raw {
		size += len(b)
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set(v2HeaderLength, strconv.Itoa(len(header)))
	h.Set("Content-Length", strconv.Itoa(size))
	w.WriteHeader(http.StatusOK)
	w.Write(header)
	for _, b := range raw {
		w.Write(b)
	}
}
