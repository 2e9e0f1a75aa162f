package bench

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSteps(t *testing.T) {
	tests := []struct {
		in   string
		want []float64
		err  string
	}{
		{"1,8,32,128", []float64{1, 8, 32, 128}, ""},
		{"1:128:x2", []float64{1, 2, 4, 8, 16, 32, 64, 128}, ""},
		{"1:100:x4", []float64{1, 4, 16, 64}, ""},
		{"100:500:+100", []float64{100, 200, 300, 400, 500}, ""},
		{"0.5:2:+0.5", []float64{0.5, 1, 1.5, 2}, ""},
		{"1, 2:8:x2", []float64{1, 2, 4, 8}, ""},
		{"", nil, "no load levels"},
		{"0", nil, "positive"},
		{"-4", nil, "positive"},
		{"abc", nil, "positive"},
		{"8:1:x2", nil, "below the start"},
		{"1:8:x1", nil, "factor above 1"},
		{"1:8:2", nil, "must start with x"},
		{"1:8", nil, "FROM:TO"},
		{"1:1000:+1", nil, "at most 64"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSteps(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLevels(t *testing.T) {
	if _, err := ConcurrencyLevels("1,2.5"); err == nil || !strings.Contains(err.Error(), "whole number") {
		t.Errorf("fractional concurrency: err %v", err)
	}
	c, err := ConcurrencyLevels("1:4:x2")
	if err != nil || !reflect.DeepEqual(c, []Level{{Concurrency: 1}, {Concurrency: 2}, {Concurrency: 4}}) {
		t.Errorf("got %v, %v", c, err)
	}
	r, err := RateLevels("500,1000", true)
	if err != nil || !reflect.DeepEqual(r, []Level{{Rate: 500, Poisson: true}, {Rate: 1000, Poisson: true}}) {
		t.Errorf("got %v, %v", r, err)
	}
	names := []struct {
		l              Level
		name, arrivals string
	}{
		{Level{Concurrency: 8}, "8", ""},
		{Level{Rate: 500}, "500/s", "constant"},
		{Level{Rate: 2.5, Poisson: true}, "2.5/s", "poisson"},
	}
	for _, n := range names {
		if n.l.String() != n.name || n.l.Arrivals() != n.arrivals {
			t.Errorf("%+v: %q %q, want %q %q", n.l, n.l.String(), n.l.Arrivals(), n.name, n.arrivals)
		}
	}
}
