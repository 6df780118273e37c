module buildkit-farm.local/bench/smoke

go 1.26
