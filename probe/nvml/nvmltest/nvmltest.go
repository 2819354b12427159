//go:build cgo && linux

// Package nvmltest provides a mocked NVIDIA node (go-nvml's mock package, with every call the
// probe's NVML collector makes stubbed) for tests and footprint benchmarks.
package nvmltest

import (
	"fmt"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// Machine is a mocked node of H100s with every NVML call the collector makes stubbed, and an
// event set fed from a channel.
type Machine struct {
	Lib    *mock.Interface
	Devs   []*mock.Device
	Events chan nvml.EventData // fed to the event set's Wait
	mu     sync.Mutex
	lost   map[int]bool
}

// SetLost makes GPU i answer ERROR_GPU_IS_LOST.
func (m *Machine) SetLost(i int) {
	m.mu.Lock()
	m.lost[i] = true
	m.mu.Unlock()
}

func (m *Machine) isLost(i int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lost[i]
}

// NewMachine returns a node of n GPUs with every NVML call the probe makes stubbed.
func NewMachine(n int) *Machine {
	m := &Machine{Events: make(chan nvml.EventData, 16), lost: map[int]bool{}}
	for i := range n {
		m.Devs = append(m.Devs, newDevice(m, i))
	}
	set := &mock.EventSet{
		WaitFunc: func(timeoutMs uint32) (nvml.EventData, nvml.Return) {
			select {
			case ev := <-m.Events:
				return ev, nvml.SUCCESS
			case <-time.After(time.Duration(timeoutMs) * time.Millisecond):
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
		},
		FreeFunc: func() nvml.Return { return nvml.SUCCESS },
	}
	m.Lib = &mock.Interface{
		InitFunc:                   func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:               func() nvml.Return { return nvml.SUCCESS },
		DeviceGetCountFunc:         func() (int, nvml.Return) { return n, nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) { return m.Devs[i], nvml.SUCCESS },
		SystemGetDriverVersionFunc: func() (string, nvml.Return) { return "550.54.15", nvml.SUCCESS },
		EventSetCreateFunc:         func() (nvml.EventSet, nvml.Return) { return set, nvml.SUCCESS },
	}
	return m
}

func busID(s string) [32]int8 {
	var b [32]int8
	for i := range len(s) {
		b[i] = int8(s[i])
	}
	return b
}

func newDevice(m *Machine, i int) *mock.Device {
	ok := nvml.SUCCESS
	u := uint32(i)
	return &mock.Device{
		GetUUIDFunc:         func() (string, nvml.Return) { return fmt.Sprintf("GPU-0000000%d-aaaa-bbbb-cccc-dddddddddddd", i), ok },
		GetNameFunc:         func() (string, nvml.Return) { return "NVIDIA H100 80GB HBM3", ok },
		GetSerialFunc:       func() (string, nvml.Return) { return fmt.Sprintf("165322000000%d", i), ok },
		GetVbiosVersionFunc: func() (string, nvml.Return) { return "96.00.99.00.01", ok },
		GetMinorNumberFunc:  func() (int, nvml.Return) { return i, ok },
		GetPciInfoFunc: func() (nvml.PciInfo, nvml.Return) {
			return nvml.PciInfo{BusId: busID(fmt.Sprintf("00000000:%02X:00.0", 0x18+i*0x10))}, ok
		},
		GetTemperatureThresholdFunc: func(t nvml.TemperatureThresholds) (uint32, nvml.Return) {
			if t == nvml.TEMPERATURE_THRESHOLD_SHUTDOWN {
				return 92, ok
			}
			return 87, ok
		},
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
			if m.isLost(i) {
				return nvml.Utilization{}, nvml.ERROR_GPU_IS_LOST
			}
			return nvml.Utilization{Gpu: 50 + u, Memory: 20 + u}, ok
		},
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			return nvml.Memory{Total: 80 << 30, Used: 60 << 30, Free: 20 << 30}, ok
		},
		GetTemperatureFunc: func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 40 + u, ok },
		GetFieldValuesFunc: func(fv []nvml.FieldValue) nvml.Return {
			for j := range fv {
				fv[j].ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_INT)
				fv[j].Value = [8]byte{byte(50 + i)}
				fv[j].NvmlReturn = uint32(ok)
			}
			return ok
		},
		GetPowerUsageFunc:             func() (uint32, nvml.Return) { return 350_500, ok }, // mW
		GetTotalEnergyConsumptionFunc: func() (uint64, nvml.Return) { return 123_456_789, ok },
		GetClockInfoFunc: func(c nvml.ClockType) (uint32, nvml.Return) {
			if c == nvml.CLOCK_SM {
				return 1980, ok
			}
			return 2619, ok
		},
		GetCurrentClocksEventReasonsFunc: func() (uint64, nvml.Return) { return 0x20, ok }, // SW thermal
		GetTotalEccErrorsFunc: func(t nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
			return uint64(t)*10 + uint64(c), ok
		},
		GetRemappedRowsFunc:      func() (int, int, bool, bool, nvml.Return) { return 2, 1, i == 2, false, ok },
		GetPcieReplayCounterFunc: func() (int, nvml.Return) { return 7, ok },
		GetPcieThroughputFunc: func(c nvml.PcieUtilCounter) (uint32, nvml.Return) {
			if c == nvml.PCIE_UTIL_TX_BYTES {
				return 1000, ok // KB/s
			}
			return 2000, ok
		},
		GetViolationStatusFunc: func(nvml.PerfPolicyType) (nvml.ViolationTime, nvml.Return) {
			return nvml.ViolationTime{ReferenceTime: 1, ViolationTime: 5000}, ok
		},
		GetNvLinkStateFunc: func(l int) (nvml.EnableState, nvml.Return) {
			if l >= 18 {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			if i == 4 && l == 3 {
				return nvml.FEATURE_DISABLED, ok
			}
			return nvml.FEATURE_ENABLED, ok
		},
		GetNvLinkErrorCounterFunc: func(int, nvml.NvLinkErrorCounter) (uint64, nvml.Return) { return 1, ok },
		GetSupportedEventTypesFunc: func() (uint64, nvml.Return) {
			return nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError | nvml.EventTypeSingleBitEccError, ok
		},
		RegisterEventsFunc: func(uint64, nvml.EventSet) nvml.Return { return ok },
	}
}
