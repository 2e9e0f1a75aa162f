package placement_test

import (
	"os"
	"reflect"
	"testing"

	"github.com/benchtop/benchtop/gpu/placement"
)

func TestVisibleDevices(t *testing.T) {
	tests := []struct {
		name string
		vis  placement.Visible
		want []string
	}{
		{name: "unset shows every device", vis: unset(3), want: []string{"0", "1", "2"}},
		{name: "no device", vis: unset(0), want: nil},
		{name: "restricts and reorders", vis: cvd(4, "2,1"), want: []string{"2", "1"}},
		{name: "empty hides all", vis: cvd(4, ""), want: nil},
		{name: "blank hides all", vis: cvd(4, "  "), want: nil},
		{name: "-1 hides all", vis: cvd(4, "-1"), want: nil},
		{name: "stops at -1", vis: cvd(4, "0,2,-1,1"), want: []string{"0", "2"}},
		{name: "stops at a missing device", vis: cvd(2, "1,5,0"), want: []string{"1"}},
		{name: "stops at garbage", vis: cvd(4, "3,x,1"), want: []string{"3"}},
		{name: "stops at an empty token", vis: cvd(4, "0,,1"), want: []string{"0"}},
		{name: "stops at a repeat", vis: cvd(4, "0,1,0"), want: []string{"0", "1"}},
		{name: "trailing comma", vis: cvd(4, "0,1,"), want: []string{"0", "1"}},
		{name: "uuids pass", vis: cvd(2, "GPU-8f2e,MIG-1a2b"), want: []string{"GPU-8f2e", "MIG-1a2b"}},
		{name: "uuid repeat stops", vis: cvd(2, "GPU-8f2e,GPU-8f2e"), want: []string{"GPU-8f2e"}},
		{name: "mixed", vis: cvd(4, "3,GPU-8f2e"), want: []string{"3", "GPU-8f2e"}},
		{name: "no driver hides even uuids", vis: cvd(0, "GPU-8f2e"), want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.vis.Devices(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Devices() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCUDAVisibleDevices(t *testing.T) {
	tests := []struct {
		name string
		vis  placement.Visible
		ids  []int
		want string
		err  string
	}{
		{name: "unset parent: the ids themselves", vis: unset(4), ids: []int{2, 3}, want: "2,3"},
		{name: "one gpu", vis: unset(4), ids: []int{1}, want: "1"},
		{name: "parent's renumbering undone", vis: cvd(8, "6,7"), ids: []int{1}, want: "7"},
		{name: "parent's order kept", vis: cvd(8, "5,2,7"), ids: []int{0, 2}, want: "5,7"},
		{name: "uuids passed through", vis: cvd(2, "GPU-aa,GPU-bb"), ids: []int{1}, want: "GPU-bb"},
		{name: "cpu worker sees no gpu", vis: unset(4), ids: nil, want: "-1"},
		{name: "id beyond the visible ones", vis: cvd(8, "6,7"), ids: []int{2}, err: "device 2 is not visible: 2 are visible (CUDA_VISIBLE_DEVICES=6,7)"},
		{name: "negative id", vis: unset(2), ids: []int{-1}, err: "device -1 is not visible: 2 are visible"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := placement.CUDAVisibleDevices(tc.vis, tc.ids)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("CUDAVisibleDevices = %q, want %q", got, tc.want)
			}
			// What the child sees, read back the way the child reads it,
			// is exactly the worker's devices, renumbered from 0.
			child := placement.Visible{Count: tc.vis.Count, CUDAVisibleDevices: got, Set: true}
			if n := len(child.Devices()); n != len(tc.ids) {
				t.Fatalf("the child sees %d devices, want %d", n, len(tc.ids))
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	t.Run("set", func(t *testing.T) {
		t.Setenv(placement.EnvVar, "1,0")
		v := placement.FromEnv(2, "")
		if !v.Set || v.CUDAVisibleDevices != "1,0" || !reflect.DeepEqual(v.Devices(), []string{"1", "0"}) {
			t.Fatalf("FromEnv = %+v", v)
		}
	})
	t.Run("set empty", func(t *testing.T) {
		t.Setenv(placement.EnvVar, "")
		if v := placement.FromEnv(2, ""); !v.Set || len(v.Devices()) != 0 {
			t.Fatalf("FromEnv = %+v, want every GPU hidden", v)
		}
	})
	t.Run("unset", func(t *testing.T) {
		t.Setenv(placement.EnvVar, "x") // registers the restore of the old value
		os.Unsetenv(placement.EnvVar)
		if v := placement.FromEnv(2, "note"); v.Set || len(v.Devices()) != 2 || v.Note != "note" {
			t.Fatalf("FromEnv = %+v, want both GPUs", v)
		}
	})
}
