// Package enginetest builds engines and runners for tests, as
// net/http/httptest does servers for handlers: each helper fails the test
// on an error, and what it starts stops when the test ends (t.Cleanup).
//
//	e := enginetest.New(t, enginetest.Options{Samples: true})
//	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "sim", Runnable: "sim"})
//	out, err := r.Run(ctx, "predict", in)
//
// The engine's own tests use it from the external package engine_test: it
// imports engine, so engine's internal tests cannot.
package enginetest
