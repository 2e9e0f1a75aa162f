package watcher

import (
	"strings"
	"testing"
)

// TestComposedAPIProblemsAtPositions: the engine's problems with Go APIs
// and pipelines land on the line and column of the key at fault.
func TestComposedAPIProblemsAtPositions(t *testing.T) {
	data := []byte(`runners:
  - {name: echo, runnable: echo}
  - {name: sentiment, runnable: sentiment}
apis:
  - {name: a1, func: sentiment-analysis, runners: {modle: sentiment}}
  - {name: a2, func: sentiment-analysis, runners: {model: echo}}
  - name: p1
    steps:
      - {name: one, runner: echo, method: echo, inputs: {input: two.output}}
      - {name: two, runner: echo, method: echo, inputs: {input: one.output}}
    outputs: {y: two.output}
  - name: p2
    steps:
      - {name: s, runner: sentiment, method: scores, inputs: {input: $input.t}}
      - name: c
        runner: sentiment
        method: classify
        inputs:
          texts: s.output
    outputs: {y: c.positive, z: nope.x}
`)
	_, err := ParseAndValidate(t.Context(), "c.yaml", data, checker(t, registry(t)), noEnv)
	want := []string{
		`c.yaml:5:51: apis[0].runners: role "model" is not bound: add model: <runner> (its runner's is_positive must take text and return json)`,
		`c.yaml:5:59: apis[0].runners.modle: func "sentiment-analysis" has no role "modle" (roles: model)`,
		`c.yaml:6:59: apis[1].runners.model.method: runner "echo" has no method "is_positive" (methods: echo, echo_text)`,
		`c.yaml:10:9: apis[2].steps[1]: steps form a cycle (two → one → two): a step can only take the outputs of steps that do not wait for it`,
		`c.yaml:19:18: apis[3].steps[1].inputs.texts: s.output is tensor float32[-1], but sentiment.classify takes "texts" as tensor string[-1]: dtype float32 is not string`,
		`c.yaml:20:33: apis[3].outputs.z: "nope.x" is neither $input.NAME (an input of the api) nor STEP.OUTPUT (steps: s, c)`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// TestComposedAPIsPrinted: config print writes a Go API and a pipeline
// with their defaults filled in.
func TestComposedAPIsPrinted(t *testing.T) {
	cfg, err := ParseAndValidate(t.Context(), "c.yaml", []byte(`runners:
  - {name: echo, runnable: echo}
  - {name: sentiment, runnable: sentiment}
apis:
  - {name: analysis, func: sentiment-analysis, runners: {model: sentiment}}
  - name: twice
    steps:
      - {runner: echo, method: echo, inputs: {input: $input.x}}
      - {name: again, runner: echo, method: echo, inputs: {input: echo.output}}
    outputs: {y: again.output}
`), checker(t, registry(t)), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Effective()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"- name: analysis\n    func: sentiment-analysis\n    runners:\n      model: sentiment\n    input: text\n    output: json",
		"- name: twice\n    steps:\n      - name: echo\n        runner: echo\n        method: echo\n        inputs:\n          input: $input.x",
		"outputs:\n      \"y\": again.output\n    input: object\n    output: object",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("effective config lacks\n%s\nin\n%s", want, out)
		}
	}
}
