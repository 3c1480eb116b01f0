package harness

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// CPUTimes is one "cpuN" line of /proc/stat, in clock ticks.
type CPUTimes struct {
	CPU                                                   int
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

func (t CPUTimes) total() uint64 {
	return t.User + t.Nice + t.System + t.Idle + t.IOWait + t.IRQ + t.SoftIRQ + t.Steal
}

// CoreUsage is one core's use during an interval, in percent of the
// interval's ticks on that core.
type CoreUsage struct {
	CPU     int     `json:"cpu"`
	Busy    float64 `json:"busy_pct"`    // everything but idle and iowait
	User    float64 `json:"user_pct"`    // user + nice
	System  float64 `json:"system_pct"`  // system
	SoftIRQ float64 `json:"softirq_pct"` // softirq + irq (network receive)
}

// ParseProcStat reads the per-core lines ("cpu0", "cpu1", …) of a
// /proc/stat, skipping the aggregate "cpu" line and everything else.
func ParseProcStat(r io.Reader) ([]CPUTimes, error) {
	var out []CPUTimes
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil {
			return nil, fmt.Errorf("parsing /proc/stat: bad cpu name %q", f[0])
		}
		t := CPUTimes{CPU: n}
		dst := []*uint64{&t.User, &t.Nice, &t.System, &t.Idle, &t.IOWait, &t.IRQ, &t.SoftIRQ, &t.Steal}
		for i := 1; i < len(f) && i-1 < len(dst); i++ {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parsing /proc/stat: %s field %d: %w", f[0], i, err)
			}
			*dst[i-1] = v
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parsing /proc/stat: %w", err)
	}
	return out, nil
}

// ReadProcStat reads /proc/stat.
func ReadProcStat() ([]CPUTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil, fmt.Errorf("reading CPU times: %w", err)
	}
	defer f.Close()
	return ParseProcStat(f)
}

// CPUUsage returns each core's use between two readings of /proc/stat.
// Cores missing from either reading (hot-plugged) are left out; a core
// whose counters did not advance reports zeros.
func CPUUsage(before, after []CPUTimes) []CoreUsage {
	prev := map[int]CPUTimes{}
	for _, t := range before {
		prev[t.CPU] = t
	}
	var out []CoreUsage
	for _, a := range after {
		b, ok := prev[a.CPU]
		if !ok {
			continue
		}
		d := func(x, y uint64) float64 {
			if x < y {
				return 0
			}
			return float64(x - y)
		}
		total := d(a.total(), b.total())
		u := CoreUsage{CPU: a.CPU}
		if total > 0 {
			idle := d(a.Idle, b.Idle) + d(a.IOWait, b.IOWait)
			u.Busy = 100 * (total - idle) / total
			u.User = 100 * (d(a.User, b.User) + d(a.Nice, b.Nice)) / total
			u.System = 100 * d(a.System, b.System) / total
			u.SoftIRQ = 100 * (d(a.SoftIRQ, b.SoftIRQ) + d(a.IRQ, b.IRQ)) / total
		}
		out = append(out, u)
	}
	return out
}

// medianCPU returns per core the median of each field over repetitions.
func medianCPU(reps [][]CoreUsage) []CoreUsage {
	byCPU := map[int][]CoreUsage{}
	var order []int
	for _, r := range reps {
		for _, u := range r {
			if _, ok := byCPU[u.CPU]; !ok {
				order = append(order, u.CPU)
			}
			byCPU[u.CPU] = append(byCPU[u.CPU], u)
		}
	}
	var out []CoreUsage
	for _, c := range order {
		us := byCPU[c]
		pick := func(f func(CoreUsage) float64) float64 {
			xs := make([]float64, len(us))
			for i, u := range us {
				xs[i] = f(u)
			}
			return Summarize(xs).Median
		}
		out = append(out, CoreUsage{
			CPU:     c,
			Busy:    pick(func(u CoreUsage) float64 { return u.Busy }),
			User:    pick(func(u CoreUsage) float64 { return u.User }),
			System:  pick(func(u CoreUsage) float64 { return u.System }),
			SoftIRQ: pick(func(u CoreUsage) float64 { return u.SoftIRQ }),
		})
	}
	return out
}
