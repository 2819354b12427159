//go:build !linux

package cpuslots

const threadPriorities = false

func lowerPriority(int) error { return nil }
