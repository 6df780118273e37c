// The bench's smoke workload (make test): one file, no dependencies, so the bench code runs
// end to end in seconds; the real workload is distribution's registry (bench/workload.py).
// No import, not even fmt: a cold build compiles the runtime and what it needs only, which
// matters most on the arm64 node, where the compiler runs under QEMU.
package main

func main() {
	println("buildkit-farm bench smoke")
}
