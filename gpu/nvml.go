package gpu

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// NVML is the part of go-nvml the monitor calls. nvml.New() (the real
// library, loaded at Init) and the go-nvml mocks satisfy it. On each
// nvml.Device the monitor calls GetName, GetUUID, GetUtilizationRates,
// GetMemoryInfo, GetTemperature, GetPowerUsage, GetComputeRunningProcesses
// and GetGraphicsRunningProcesses, and nothing else.
type NVML interface {
	Init() nvml.Return
	// Extensions().LookupSymbol tells whether the driver still exports a
	// deprecated function: calling one it dropped would end the process.
	Extensions() nvml.ExtendedInterface
	Shutdown() nvml.Return
	SystemGetDriverVersion() (string, nvml.Return)
	SystemGetProcessName(pid int) (string, nvml.Return)
	DeviceGetCount() (int, nvml.Return)
	DeviceGetHandleByIndex(index int) (nvml.Device, nvml.Return)
}

// returnText words an NVML return code without calling into NVML: after a
// failed Init nothing in the library may be called, nvmlErrorString
// included.
func returnText(r nvml.Return) string {
	switch r {
	case nvml.SUCCESS:
		return "success"
	case nvml.ERROR_UNINITIALIZED:
		return "not initialized"
	case nvml.ERROR_INVALID_ARGUMENT:
		return "invalid argument"
	case nvml.ERROR_NOT_SUPPORTED:
		return "not supported by this device"
	case nvml.ERROR_NO_PERMISSION:
		return "no permission"
	case nvml.ERROR_ALREADY_INITIALIZED:
		return "already initialized"
	case nvml.ERROR_NOT_FOUND:
		return "not found"
	case nvml.ERROR_INSUFFICIENT_SIZE:
		return "insufficient size"
	case nvml.ERROR_INSUFFICIENT_POWER:
		return "insufficient power (is the power cable connected?)"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "driver not loaded"
	case nvml.ERROR_TIMEOUT:
		return "timeout"
	case nvml.ERROR_IRQ_ISSUE:
		return "interrupt issue with the GPU"
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "library not found"
	case nvml.ERROR_FUNCTION_NOT_FOUND:
		return "function not found in this driver's NVML"
	case nvml.ERROR_CORRUPTED_INFOROM:
		return "corrupted inforom"
	case nvml.ERROR_GPU_IS_LOST:
		return "GPU is lost (it fell off the bus or stopped responding)"
	case nvml.ERROR_RESET_REQUIRED:
		return "GPU needs a reset"
	case nvml.ERROR_OPERATING_SYSTEM:
		return "the operating system blocked the call"
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return "driver/library version mismatch (reboot or reload the driver)"
	case nvml.ERROR_IN_USE:
		return "in use"
	case nvml.ERROR_MEMORY:
		return "out of memory"
	case nvml.ERROR_NO_DATA:
		return "no data"
	case nvml.ERROR_NOT_READY:
		return "not ready"
	case nvml.ERROR_GPU_NOT_FOUND:
		return "GPU not found"
	case nvml.ERROR_INVALID_STATE:
		return "invalid state"
	case nvml.ERROR_UNKNOWN:
		return "unknown error"
	}
	return fmt.Sprintf("NVML return code %d", int32(r))
}

// absent reports whether r means the device simply lacks the reading: such a
// value is left out, not reported as an error.
func absent(r nvml.Return) bool {
	return r == nvml.ERROR_NOT_SUPPORTED || r == nvml.ERROR_FUNCTION_NOT_FOUND
}

// noGPUMessage is what the UI and the log say when NVML cannot start.
func noGPUMessage(r nvml.Return) string {
	switch r {
	case nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED, nvml.ERROR_GPU_NOT_FOUND:
		return fmt.Sprintf("no NVIDIA GPU found (NVML: %s)", returnText(r))
	}
	// The GPUs may well be there; the user can fix what stops NVML.
	return fmt.Sprintf("NVIDIA GPUs unavailable (NVML: %s)", returnText(r))
}
