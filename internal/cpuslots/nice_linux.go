package cpuslots

import "syscall"

// threadPriorities tells whether one thread's scheduling priority can be lowered alone.
const threadPriorities = true

// lowerPriority adds nice to the calling thread's nice value, up to 19. On Linux,
// PRIO_PROCESS with a thread ID applies to that thread alone.
func lowerPriority(nice int) error {
	tid := syscall.Gettid()
	cur, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		return err
	}
	// The raw system call returns 20 - nice.
	return syscall.Setpriority(syscall.PRIO_PROCESS, tid, min(19, 20-cur+nice))
}
