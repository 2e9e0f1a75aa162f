package placement

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// EnvVar is the variable CUDA reads to restrict and renumber the GPUs a
// process sees.
const EnvVar = "CUDA_VISIBLE_DEVICES"

// Visible is what CUDA inside this process can see.
type Visible struct {
	// Count is how many GPUs the driver reports (NVML's device count, which
	// ignores CUDA_VISIBLE_DEVICES).
	Count int
	// CUDAVisibleDevices is the user's CUDA_VISIBLE_DEVICES; Set says whether
	// it is set at all, because unset shows every device and "" shows none.
	CUDAVisibleDevices string
	Set                bool
	// Note says why Count is what it is, for error messages (package gpu puts
	// "no NVIDIA GPU found (NVML: library not found)" here).
	Note string
}

// FromEnv is a Visible for count devices and this process's
// CUDA_VISIBLE_DEVICES.
func FromEnv(count int, note string) Visible {
	v, ok := os.LookupEnv(EnvVar)
	return Visible{Count: count, CUDAVisibleDevices: v, Set: ok, Note: note}
}

// Devices names the visible devices in CUDA's order: entry i is how the
// driver knows device id i, an index such as "2" or a UUID ("GPU-…",
// "MIG-…") when CUDA_VISIBLE_DEVICES lists UUIDs. Its length is the number of
// GPUs CUDA in this process will use.
func (v Visible) Devices() []string {
	devs, _ := v.parse()
	return devs
}

// parse reads CUDA_VISIBLE_DEVICES the way the CUDA runtime does: tokens in
// order until the first one that names no device, which hides it and every
// token after it. stop explains that token, "" when every token counted.
func (v Visible) parse() (devs []string, stop string) {
	if v.Count <= 0 {
		return nil, ""
	}
	if !v.Set {
		devs = make([]string, v.Count)
		for i := range devs {
			devs[i] = strconv.Itoa(i)
		}
		return devs, ""
	}
	if s := strings.TrimSpace(v.CUDAVisibleDevices); s == "" || s == "-1" {
		return nil, "" // the usual ways to hide every GPU: nothing to explain
	}
	seen := map[string]bool{}
	for tok := range strings.SplitSeq(v.CUDAVisibleDevices, ",") {
		tok = strings.TrimSpace(tok)
		if why := v.invalid(tok, seen); why != "" {
			return devs, fmt.Sprintf("CUDA stops at %q: %s", tok, why)
		}
		seen[tok] = true
		devs = append(devs, tok)
	}
	return devs, ""
}

// invalid says why tok names no device, "" when it names one.
func (v Visible) invalid(tok string, seen map[string]bool) string {
	if strings.HasPrefix(tok, "GPU-") || strings.HasPrefix(tok, "MIG-") {
		if seen[tok] {
			return "listed twice"
		}
		// A UUID cannot be checked without the driver; CUDA will.
		return ""
	}
	n, err := strconv.Atoi(tok)
	switch {
	case err != nil:
		return "not a device index or GPU-/MIG- UUID"
	case n < 0:
		return "negative, which hides every GPU from there on"
	case n >= v.Count:
		return fmt.Sprintf("no such device (the driver reports %d)", v.Count)
	case seen[strconv.Itoa(n)]:
		return "listed twice"
	}
	return ""
}

// context is what an error appends so that the user sees where the visible
// count comes from.
func (v Visible) context() string {
	var b strings.Builder
	if v.Set {
		_, stop := v.parse()
		fmt.Fprintf(&b, " (%s=%s", EnvVar, v.CUDAVisibleDevices)
		if stop != "" {
			fmt.Fprintf(&b, ": %s", stop)
		}
		b.WriteString(")")
	}
	if v.Note != "" {
		fmt.Fprintf(&b, ": %s", v.Note)
	}
	return b.String()
}

// visibleCount words a device count for an error message.
func visibleCount(n int) string {
	switch n {
	case 0:
		return "none is visible"
	case 1:
		return "1 is visible"
	}
	return fmt.Sprintf("%d are visible", n)
}

// CUDAVisibleDevices is the CUDA_VISIBLE_DEVICES to give a worker process
// that owns the device ids: the parent's own names for them, so that the
// child sees exactly those GPUs, renumbered from 0 in the same order. A
// worker with no GPU gets "-1", which hides every GPU, so that a framework in
// a CPU worker cannot grab GPU memory by accident.
func CUDAVisibleDevices(v Visible, ids []int) (string, error) {
	if len(ids) == 0 {
		return "-1", nil
	}
	devs := v.Devices()
	names := make([]string, len(ids))
	for i, id := range ids {
		if id < 0 || id >= len(devs) {
			return "", fmt.Errorf("device %d is not visible: %s%s", id, visibleCount(len(devs)), v.context())
		}
		names[i] = devs[id]
	}
	return strings.Join(names, ","), nil
}
