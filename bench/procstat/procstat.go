// Package procstat reads a process tree's CPU time and resident memory
// from /proc (Linux): utime+stime from /proc/PID/stat and VmRSS from
// /proc/PID/status, summed over the process and its descendants (a proxy
// that forks workers is measured whole).
//
// Functions read /proc afresh on each call and share no state: safe from
// any goroutine.
package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, 100 on every Linux architecture Go supports
// (sysconf(_SC_CLK_TCK) without cgo).
const clockTick = 100

type stat struct {
	ppid int
	cpu  time.Duration
}

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	// comm may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return stat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return stat{ppid: ppid, cpu: time.Duration(ut+st) * time.Second / clockTick}, nil
}

// Tree is pid and every live descendant.
func Tree(pid int) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	children := map[int][]int{}
	for _, d := range dirs {
		p, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		s, err := readStat(p)
		if err != nil {
			continue
		}
		children[s.ppid] = append(children[s.ppid], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// CPU is the user+system CPU time used so far by pids (10 ms resolution).
func CPU(pids ...int) (time.Duration, error) {
	var sum time.Duration
	for _, p := range pids {
		s, err := readStat(p)
		if err != nil {
			return 0, err
		}
		sum += s.cpu
	}
	return sum, nil
}

// TreeCPU is CPU over pid's tree.
func TreeCPU(pid int) (time.Duration, error) { return CPU(Tree(pid)...) }

// RSS is the resident set size of pids, in bytes.
func RSS(pids ...int) (int64, error) {
	var sum int64
	for _, p := range pids {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			return 0, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				sum += kb << 10
				break
			}
		}
		f.Close()
	}
	return sum, nil
}

// Mem is a resident set split as the kernel counts it (/proc/PID/status),
// in bytes: Anon is the process's own memory (heap, stacks), File the
// pages of mapped files (mostly the binary's text and read-only data,
// shared with other processes of the same binary).
type Mem struct {
	RSS, Anon, File int64
}

// Memory is the resident set of pids, summed.
func Memory(pids ...int) (Mem, error) {
	var m Mem
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			return Mem{}, err
		}
		for line := range strings.Lines(string(b)) {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			var dst *int64
			switch k {
			case "VmRSS":
				dst = &m.RSS
			case "RssAnon":
				dst = &m.Anon
			case "RssFile":
				dst = &m.File
			default:
				continue
			}
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return Mem{}, fmt.Errorf("/proc/%d/status %s: %w", p, k, err)
			}
			*dst += kb << 10
		}
	}
	return m, nil
}

// TreeMemory is Memory over pid's tree.
func TreeMemory(pid int) (Mem, error) { return Memory(Tree(pid)...) }

// TreeRSS is RSS over pid's tree.
func TreeRSS(pid int) (int64, error) { return RSS(Tree(pid)...) }
