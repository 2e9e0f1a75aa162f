package engine

import "testing"

// TestParamsDiffReadsAsKeyValue: a restart's reason names the init params
// that changed as key=value, not as Go prints maps.
func TestParamsDiffReadsAsKeyValue(t *testing.T) {
	a := Params{"batch_dim": 0, "path": "/m/v1.onnx", "env": map[string]any{"A": "1"}}
	b := Params{"batch_dim": 1, "path": "/m/v1.onnx", "output": "probs", "env": map[string]any{"A": "2"}}
	want := `batch_dim=0 → batch_dim=1, env={"A":"1"} → env={"A":"2"}, output unset → output=probs`
	if got := paramsDiff(a, b); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
