package debug

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	rdebug "runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// The standard go_ and process_ metric families, under the names and with
// the meaning Prometheus' Go client gives them, so the usual dashboards and
// alerts work. They are written here from runtime/metrics and /proc rather
// than by importing client_golang, which would bring its dependency tree
// (client_model, common, procfs, protobuf) into this package for about a
// hundred lines.

// runtimeSamples are the runtime/metrics the go_ families read.
var runtimeSamples = []string{
	"/gc/heap/allocs:bytes",
	"/gc/heap/allocs:objects",
	"/gc/heap/frees:objects",
	"/gc/heap/tiny/allocs:objects",
	"/gc/heap/objects:objects",
	"/gc/heap/goal:bytes",
	"/gc/gogc:percent",
	"/gc/gomemlimit:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/os-stacks:bytes",
	"/memory/classes/metadata/other:bytes",
	"/memory/classes/metadata/mspan/inuse:bytes",
	"/memory/classes/metadata/mcache/inuse:bytes",
	"/sched/gomaxprocs:threads",
}

// RuntimeFamilies returns the standard Go runtime metrics (go_goroutines,
// go_threads, go_info, go_gc_duration_seconds, go_memstats_*,
// go_sched_gomaxprocs_threads, go_gc_gogc_percent, go_gc_gomemlimit_bytes)
// and, where /proc is (Linux), the process ones (process_cpu_seconds_total,
// process_open_fds, process_max_fds, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_virtual_memory_max_bytes,
// process_start_time_seconds). Reading them does not stop the world.
func RuntimeFamilies() []Family {
	samples := make([]metrics.Sample, len(runtimeSamples))
	for i, n := range runtimeSamples {
		samples[i].Name = n
	}
	metrics.Read(samples)
	v := make(map[string]float64, len(samples))
	for _, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			v[s.Name] = float64(s.Value.Uint64())
		case metrics.KindFloat64:
			v[s.Name] = s.Value.Float64()
		}
	}
	one := func(name, help string, t MetricType, val float64) Family {
		return Family{Name: name, Help: help, Type: t, Samples: []Sample{{Value: val}}}
	}
	var gc rdebug.GCStats
	gc.PauseQuantiles = make([]time.Duration, 5)
	rdebug.ReadGCStats(&gc)
	pauses := Sample{Count: uint64(gc.NumGC), Sum: gc.PauseTotal.Seconds()}
	for i, q := range []float64{0, 0.25, 0.5, 0.75, 1} {
		pauses.Quantiles = append(pauses.Quantiles, Quantile{Q: q, Value: gc.PauseQuantiles[i].Seconds()})
	}
	lastGC := 0.0
	if !gc.LastGC.IsZero() {
		lastGC = float64(gc.LastGC.UnixNano()) / 1e9
	}
	tiny := v["/gc/heap/tiny/allocs:objects"]
	heapInuse := v["/memory/classes/heap/objects:bytes"] + v["/memory/classes/heap/unused:bytes"]
	fams := []Family{
		{Name: "go_gc_duration_seconds", Help: "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.",
			Type: MetricSummary, Samples: []Sample{pauses}},
		one("go_goroutines", "Number of goroutines that currently exist.", MetricGauge, float64(runtime.NumGoroutine())),
		one("go_threads", "Number of OS threads created.", MetricGauge, float64(pprof.Lookup("threadcreate").Count())),
		{Name: "go_info", Help: "Information about the Go environment.", Type: MetricGauge,
			Samples: []Sample{{Labels: [][2]string{{"version", runtime.Version()}}, Value: 1}}},
		one("go_memstats_alloc_bytes", "Number of heap bytes allocated and currently in use.", MetricGauge, v["/memory/classes/heap/objects:bytes"]),
		one("go_memstats_alloc_bytes_total", "Total number of heap bytes allocated, even if freed.", MetricCounter, v["/gc/heap/allocs:bytes"]),
		one("go_memstats_sys_bytes", "Number of bytes obtained from system.", MetricGauge, v["/memory/classes/total:bytes"]),
		one("go_memstats_mallocs_total", "Total number of heap objects allocated, both live and gc-ed.", MetricCounter, v["/gc/heap/allocs:objects"]+tiny),
		one("go_memstats_frees_total", "Total number of heap objects frees.", MetricCounter, v["/gc/heap/frees:objects"]+tiny),
		one("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use.", MetricGauge, v["/memory/classes/heap/objects:bytes"]),
		one("go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used.", MetricGauge,
			v["/memory/classes/heap/released:bytes"]+v["/memory/classes/heap/free:bytes"]),
		one("go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use.", MetricGauge, heapInuse),
		one("go_memstats_heap_released_bytes", "Number of heap bytes released to OS.", MetricGauge, v["/memory/classes/heap/released:bytes"]),
		one("go_memstats_heap_objects", "Number of currently allocated objects.", MetricGauge, v["/gc/heap/objects:objects"]),
		one("go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator in non-CGO environments.", MetricGauge,
			v["/memory/classes/heap/stacks:bytes"]),
		one("go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator.", MetricGauge,
			v["/memory/classes/heap/stacks:bytes"]+v["/memory/classes/os-stacks:bytes"]),
		one("go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures.", MetricGauge, v["/memory/classes/metadata/mspan/inuse:bytes"]),
		one("go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures.", MetricGauge, v["/memory/classes/metadata/mcache/inuse:bytes"]),
		one("go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", MetricGauge, v["/gc/heap/goal:bytes"]),
		one("go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", MetricGauge, lastGC),
		one("go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting.", MetricGauge, v["/sched/gomaxprocs:threads"]),
		one("go_gc_gogc_percent", "Heap size target percentage configured by the user (GOGC).", MetricGauge, v["/gc/gogc:percent"]),
		one("go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user (GOMEMLIMIT).", MetricGauge, v["/gc/gomemlimit:bytes"]),
	}
	return append(fams, processFamilies()...)
}

// userHZ is the unit of the times in /proc/PID/stat: USER_HZ, 100 on every
// Linux architecture Go supports (the kernel's ABI).
const userHZ = 100

// processFamilies reads /proc; it returns nothing where there is none.
func processFamilies() []Family {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return nil
	}
	// The fields after the command name, which ends at the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 22 {
		return nil
	}
	num := func(j int) float64 { // field j+3 of proc(5)
		n, _ := strconv.ParseUint(f[j], 10, 64)
		return float64(n)
	}
	one := func(name, help string, t MetricType, val float64) Family {
		return Family{Name: name, Help: help, Type: t, Samples: []Sample{{Value: val}}}
	}
	fams := []Family{
		one("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", MetricCounter, (num(11)+num(12))/userHZ),
		one("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricGauge, num(20)),
		one("process_resident_memory_bytes", "Resident memory size in bytes.", MetricGauge, num(21)*float64(os.Getpagesize())),
	}
	if btime, ok := bootTime(); ok {
		fams = append(fams, one("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", MetricGauge,
			btime+num(19)/userHZ))
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fams = append(fams, one("process_open_fds", "Number of open file descriptors.", MetricGauge, float64(len(ents))))
	}
	if files, space, ok := limits(); ok {
		fams = append(fams,
			one("process_max_fds", "Maximum number of open file descriptors.", MetricGauge, files),
			one("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", MetricGauge, space))
	}
	return fams
}

// bootTime reads the boot time from /proc/stat, in seconds since 1970.
func bootTime() (float64, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return float64(n), err == nil
		}
	}
	return 0, false
}

// limits reads the soft limits on open files and address space from
// /proc/self/limits ("unlimited" is the largest uint64, as the kernel has
// it).
func limits() (files, space float64, ok bool) {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return 0, 0, false
	}
	var gotFiles, gotSpace bool
	for _, line := range strings.Split(string(b), "\n") {
		if v, found := strings.CutPrefix(line, "Max open files"); found {
			files, gotFiles = softLimit(v)
		} else if v, found := strings.CutPrefix(line, "Max address space"); found {
			space, gotSpace = softLimit(v)
		}
	}
	return files, space, gotFiles && gotSpace
}

// softLimit reads the first column of a limits line after its name.
func softLimit(cols string) (float64, bool) {
	f := strings.Fields(cols)
	if len(f) == 0 {
		return 0, false
	}
	if f[0] == "unlimited" {
		return float64(^uint64(0)), true
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	return float64(n), err == nil
}
