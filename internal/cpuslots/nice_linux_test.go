package cpuslots

import (
	"runtime"
	"syscall"
	"testing"
)

// niceOfThisThread is the calling thread's nice value, as nice(1) counts.
func niceOfThisThread(t *testing.T) int {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	if err != nil {
		t.Fatalf("getpriority: %v", err)
	}
	return 20 - p
}
