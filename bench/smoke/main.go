// The bench's smoke workload (make test): one file, no dependencies, so the bench code runs
// end to end in seconds; the real workload is distribution's registry (bench/workload.py).
package main

import "fmt"

func main() {
	fmt.Println("buildkit-farm bench smoke")
}
