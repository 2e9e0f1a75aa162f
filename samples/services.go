package samples

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// isPositive is the method both sample APIs call: text in, JSON out.
var isPositive = engine.MethodSpec{
	Name:    "is_positive",
	Inputs:  tensor.IOSpecs{{Kind: tensor.KindText}},
	Outputs: tensor.IOSpecs{{Kind: tensor.KindJSON}},
}

// SentimentAnalysis is the analysis API of BentoML's guide: it calls the
// model runner's is_positive, counts the polarity in a counter of its own,
// and answers {"is_positive": true}.
//
//	apis:
//	  - {name: analysis, func: sentiment-analysis, runners: {model: sentiment}}
func SentimentAnalysis() *engine.ServiceType {
	return &engine.ServiceType{
		Name:    "sentiment-analysis",
		Doc:     `text → {"is_positive": bool}, counting polarities in sentiment_analysis_polarity_total.`,
		Inputs:  tensor.IOSpecs{{Kind: tensor.KindText}},
		Outputs: tensor.IOSpecs{{Kind: tensor.KindJSON}},
		Input:   engine.IOText,
		Output:  engine.IOJSON,
		Roles:   []engine.Role{{Name: "model", Doc: "a sentiment runner", Method: isPositive}},
		New: func(_ context.Context, env engine.ServiceEnv) (engine.ServiceFunc, error) {
			polarity, err := engine.RegisterOrReuse(env.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "sentiment_analysis_polarity_total",
				Help: "Texts the analysis API judged, by polarity (positive, negative).",
			}, []string{"polarity"}))
			if err != nil {
				return nil, fmt.Errorf("register polarity counter: %w", err)
			}
			positive, negative := polarity.WithLabelValues("positive"), polarity.WithLabelValues("negative")
			return func(ctx context.Context, rs *engine.Runners, in []tensor.Value) ([]tensor.Value, error) {
				out, err := rs.Call(ctx, "model", in[0])
				if err != nil {
					return nil, err
				}
				yes, ok := out[0].JSON().(bool)
				if !ok {
					return nil, fmt.Errorf("%s.is_positive answered %s, not true or false", rs.Runner("model"), out[0])
				}
				if yes {
					positive.Inc()
				} else {
					negative.Inc()
				}
				return []tensor.Value{tensor.JSONValue(map[string]any{"is_positive": yes})}, nil
			}, nil
		},
	}
}

// SentimentCompare sends one text to two runners at once, BentoML's
// reusable runnable served twice with other init params, and answers both
// verdicts: {"lenient": true, "strict": false}.
//
//	apis:
//	  - {name: compare, func: sentiment-compare, runners: {lenient: sentiment, strict: sentiment-strict}}
func SentimentCompare() *engine.ServiceType {
	return &engine.ServiceType{
		Name:   "sentiment-compare",
		Doc:    "text → the verdicts of two sentiment runners, asked at once.",
		Inputs: tensor.IOSpecs{{Name: "text", Kind: tensor.KindText}},
		Outputs: tensor.IOSpecs{
			{Name: "lenient", Kind: tensor.KindJSON},
			{Name: "strict", Kind: tensor.KindJSON},
		},
		Input:  engine.IOText,
		Output: engine.IOObject,
		Roles: []engine.Role{
			{Name: "lenient", Doc: "a sentiment runner", Method: isPositive},
			{Name: "strict", Doc: "another, with a higher threshold", Method: isPositive},
		},
		New: func(context.Context, engine.ServiceEnv) (engine.ServiceFunc, error) {
			return compare, nil
		},
	}
}

func compare(ctx context.Context, rs *engine.Runners, in []tensor.Value) ([]tensor.Value, error) {
	roles := [2]string{"lenient", "strict"}
	var (
		wg   sync.WaitGroup
		outs [2]tensor.Value
		errs [2]error
	)
	for i, role := range roles {
		wg.Go(func() {
			out, err := rs.Call(ctx, role, in[0])
			if err == nil {
				outs[i] = out[0]
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return outs[:], nil
}
