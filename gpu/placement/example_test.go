package placement_test

import (
	"fmt"

	"github.com/benchtop/benchtop/gpu/placement"
)

// Four workers on two of a machine's eight GPUs, the user having kept
// benchtop to GPUs 6 and 7; each worker process gets its GPU under the
// driver's name for it.
func ExamplePlace() {
	vis := placement.Visible{Count: 8, CUDAVisibleDevices: "6,7", Set: true}
	p, err := placement.Place(placement.Request{Runner: "llm", GPUs: 2, WorkersPerResource: 2}, vis)
	if err != nil {
		fmt.Println(err)
		return
	}
	for w, ids := range p.Workers {
		env, _ := placement.CUDAVisibleDevices(vis, ids)
		fmt.Printf("worker %d: Env.GPUs %v, CUDA_VISIBLE_DEVICES=%s\n", w, ids, env)
	}
	_, err = placement.Place(placement.Request{Runner: "llm", GPUs: 4}, vis)
	fmt.Println(err)
	// Output:
	// worker 0: Env.GPUs [0], CUDA_VISIBLE_DEVICES=6
	// worker 1: Env.GPUs [1], CUDA_VISIBLE_DEVICES=7
	// worker 2: Env.GPUs [0], CUDA_VISIBLE_DEVICES=6
	// worker 3: Env.GPUs [1], CUDA_VISIBLE_DEVICES=7
	// runner "llm" asks for 4 nvidia.com/gpu but 2 are visible (CUDA_VISIBLE_DEVICES=6,7)
}
