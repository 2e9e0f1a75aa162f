package samples

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// SentimentParams are the init params of the sentiment runnable.
type SentimentParams struct {
	// Threshold is the compound score at or above which a text is positive.
	Threshold float64 `json:"threshold"`
}

// Sentiment is the custom runner of BentoML's guide, in Go: a lexicon-based
// analyser in the manner of VADER (valence words, negation, intensifiers,
// exclamation), with its own Prometheus metrics registered through the engine.
func Sentiment() *engine.RunnableType {
	return &engine.RunnableType{
		Name: "sentiment",
		Doc:  "lexicon-based sentiment analysis; is_positive(text), and batchable scores([N] strings) and classify(texts, threshold)",
		Methods: []engine.MethodSpec{
			{
				Name:    "is_positive",
				Doc:     "text → JSON true when its compound score reaches the threshold",
				Inputs:  []tensor.IOSpec{{Kind: tensor.KindText}},
				Outputs: []tensor.IOSpec{{Kind: tensor.KindJSON}},
			},
			{
				Name:      "scores",
				Doc:       "string [N] → float32 [N] compound scores in [-1, 1]",
				Batchable: true,
				Inputs:    []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.String, Shape: []int{-1}}},
				Outputs:   []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1}}},
			},
			{
				Name: "classify",
				Doc: "texts string [N] and, optionally, a threshold float32 scalar for the whole request (the runner's when absent) → " +
					"positive bool [N] and scores float32 [N]",
				Batchable: true,
				Inputs: []tensor.IOSpec{
					{Name: "texts", Kind: tensor.KindTensor, DType: tensor.String, Shape: []int{-1}},
					{Name: "threshold", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{}, Unbatched: true, Optional: true},
				},
				Outputs: []tensor.IOSpec{
					{Name: "positive", Kind: tensor.KindTensor, DType: tensor.Bool, Shape: []int{-1}},
					{Name: "scores", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1}},
				},
			},
		},
		Validate: func(_ context.Context, p engine.Params) error { _, err := sentimentParams(p); return err },
		New:      newSentiment,
	}
}

func sentimentParams(params engine.Params) (SentimentParams, error) {
	p := SentimentParams{Threshold: 0.05}
	if err := params.Decode(&p); err != nil {
		return p, err
	}
	if p.Threshold < -1 || p.Threshold > 1 {
		return p, fmt.Errorf("init params: threshold %v is outside the score range [-1, 1]", p.Threshold)
	}
	return p, nil
}

// sentimentMetrics are shared by every worker of a runner.
type sentimentMetrics struct {
	duration *prometheus.HistogramVec
	polarity *prometheus.CounterVec
}

type sentiment struct {
	threshold float64
	metrics   sentimentMetrics
	classify  engine.MethodSpec // for reading its inputs and building its outputs by name
}

var _ engine.Instance = (*sentiment)(nil)

func newSentiment(_ context.Context, env engine.Env) (engine.Instance, error) {
	p, err := sentimentParams(env.Params)
	if err != nil {
		return nil, err
	}
	d, err := engine.RegisterOrReuse(env.Metrics, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sentiment_inference_duration_seconds",
		Help:    "Time the sentiment runnable spent scoring, by method and lexicon.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
	}, []string{"method", "lexicon"}))
	if err != nil {
		return nil, fmt.Errorf("register inference_duration: %w", err)
	}
	c, err := engine.RegisterOrReuse(env.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sentiment_polarity_total",
		Help: "Texts scored, by polarity (positive, negative, neutral).",
	}, []string{"polarity"}))
	if err != nil {
		return nil, fmt.Errorf("register polarity_total: %w", err)
	}
	classify, _ := env.Method("classify")
	return &sentiment{threshold: p.Threshold, metrics: sentimentMetrics{d, c}, classify: classify}, nil
}

func (s *sentiment) Call(_ context.Context, method string, in []tensor.Value) ([]tensor.Value, error) {
	start := time.Now()
	defer func() {
		s.metrics.duration.WithLabelValues(method, lexiconVersion).Observe(time.Since(start).Seconds())
	}()
	switch method {
	case "is_positive":
		text := in[0].Text() // a method of one input reads it by position
		if strings.TrimSpace(text) == "" {
			return nil, engine.InvalidInput(fmt.Errorf("text is empty: send a sentence to analyse"))
		}
		score := s.score(text)
		return []tensor.Value{tensor.JSONValue(score >= s.threshold)}, nil
	case "scores":
		texts := in[0].Tensor().Strings()
		out := make([]float32, len(texts))
		for i, t := range texts {
			out[i] = float32(s.score(t))
		}
		t, err := tensor.NewTensor([]int{len(out)}, out)
		if err != nil {
			return nil, err
		}
		return []tensor.Value{tensor.TensorValue(t)}, nil
	case "classify":
		return s.classifyBatch(engine.NewArgs(s.classify, in))
	}
	return nil, fmt.Errorf("sentiment has no method %q", method)
}

// classifyBatch reads its inputs and builds its outputs by name.
func (s *sentiment) classifyBatch(a engine.Args) ([]tensor.Value, error) {
	texts, err := a.Tensor("texts")
	if err != nil {
		return nil, err
	}
	threshold := s.threshold
	if a.Has("threshold") {
		t, err := a.Tensor("threshold")
		if err != nil {
			return nil, err
		}
		threshold = float64(t.Float32s()[0])
		if threshold < -1 || threshold > 1 {
			return nil, engine.InvalidInput(fmt.Errorf("threshold %v is outside the score range [-1, 1]", threshold))
		}
	}
	n := len(texts.Strings())
	positive, scores := make([]bool, n), make([]float32, n)
	for i, text := range texts.Strings() {
		c := s.score(text)
		positive[i], scores[i] = c >= threshold, float32(c)
	}
	pt, err := tensor.NewTensor([]int{n}, positive)
	if err != nil {
		return nil, err
	}
	st, err := tensor.NewTensor([]int{n}, scores)
	if err != nil {
		return nil, err
	}
	out := engine.NewResults(s.classify)
	out.SetTensor("positive", pt)
	out.SetTensor("scores", st)
	return out.Values()
}

func (s *sentiment) score(text string) float64 {
	c := Compound(text)
	switch {
	case c >= s.threshold && c > 0:
		s.metrics.polarity.WithLabelValues("positive").Inc()
	case c < -s.threshold || (c < 0 && s.threshold <= 0):
		s.metrics.polarity.WithLabelValues("negative").Inc()
	default:
		s.metrics.polarity.WithLabelValues("neutral").Inc()
	}
	return c
}

const lexiconVersion = "benchtop-1"

// lexicon holds valences on VADER's -4..4 scale for common review words.
var lexicon = map[string]float64{
	"good": 1.9, "great": 3.1, "excellent": 2.7, "amazing": 2.8, "awesome": 3.1, "love": 3.2, "loved": 2.9,
	"like": 1.5, "liked": 1.8, "nice": 1.8, "happy": 2.7, "best": 3.2, "fantastic": 2.6, "wonderful": 2.7,
	"enjoy": 2.2, "enjoyed": 2.3, "fun": 2.3, "perfect": 2.7, "brilliant": 2.8, "beautiful": 2.9, "fast": 1.1,
	"helpful": 1.9, "recommend": 1.5, "pleased": 1.9, "glad": 2.0, "superb": 3.1, "delightful": 2.8, "win": 2.8,
	"bad": -2.5, "terrible": -2.1, "awful": -2.0, "horrible": -2.5, "hate": -2.7, "hated": -3.2, "worst": -3.1,
	"poor": -2.1, "boring": -1.3, "sad": -2.1, "angry": -2.3, "disappointing": -2.2, "disappointed": -1.9,
	"slow": -1.0, "broken": -2.1, "ugly": -2.3, "useless": -1.8, "waste": -1.8, "annoying": -1.7, "fail": -2.5,
	"failed": -2.3, "wrong": -2.1, "problem": -1.7, "crash": -1.7, "crashed": -1.7, "bug": -1.2, "buggy": -1.9,
	"mediocre": -1.0, "dull": -1.7, "expensive": -0.9, "pain": -2.3, "lose": -1.9, "lost": -1.3,
}

var negations = map[string]bool{
	"not": true, "no": true, "never": true, "none": true, "nobody": true, "nothing": true, "neither": true,
	"nor": true, "cannot": true, "without": true, "isnt": true, "wasnt": true, "dont": true, "doesnt": true,
	"didnt": true, "cant": true, "wont": true, "aint": true, "arent": true, "shouldnt": true, "wouldnt": true,
}

var boosters = map[string]float64{
	"very": 0.293, "really": 0.293, "extremely": 0.293, "so": 0.293, "incredibly": 0.293, "absolutely": 0.293,
	"totally": 0.293, "super": 0.293, "quite": 0.1, "slightly": -0.293, "somewhat": -0.293, "barely": -0.293,
	"kinda": -0.293, "little": -0.293,
}

// Compound is the text's sentiment in [-1, 1]: the sum of word valences,
// flipped after a negation within three words, scaled by intensifiers and
// exclamation marks, normalised as VADER does (x / √(x² + 15)).
func Compound(text string) float64 {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && r != '\''
	})
	var sum float64
	for i, w := range words {
		w = strings.ReplaceAll(w, "'", "")
		v, ok := lexicon[w]
		if !ok {
			continue
		}
		for back := 1; back <= 3 && i-back >= 0; back++ {
			prev := strings.ReplaceAll(words[i-back], "'", "")
			if b, ok := boosters[prev]; ok && back == 1 {
				if v > 0 {
					v += b
				} else {
					v -= b
				}
			}
			if negations[prev] || strings.HasSuffix(prev, "nt") && len(prev) > 3 {
				v *= -0.74
				break
			}
		}
		sum += v
	}
	if sum != 0 {
		bangs := float64(min(strings.Count(text, "!"), 4)) * 0.292
		if sum > 0 {
			sum += bangs
		} else {
			sum -= bangs
		}
	}
	return sum / math.Sqrt(sum*sum+15)
}
