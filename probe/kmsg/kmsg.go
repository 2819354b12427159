// Package kmsg follows the kernel log (/dev/kmsg, or a text file such as /var/log/kern.log)
// and turns NVIDIA driver lines into XID counts:
//
//	NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.
//	NVRM: GPU at PCI:0000:9b:00: GPU-5d2ea4ff-...      (maps the PCI address to the UUID)
//	NVRM: GPU 0000:18:00.0: GPU has fallen off the bus. (no Xid token)
//
// Every Xid line is one occurrence for the xid.Tracker (source "kmsg"); the tracker exposes
// the counts. The package itself exposes the fallen-off-the-bus lines and its own line count.
//
// /dev/kmsg is read record by record from the start of the kernel's ring buffer, so XIDs
// logged since boot are counted once the probe starts; a text file is read from its start and
// then followed (polled every 500 ms; a file that shrinks is read again from its start).
//
// Goroutines: Run reads until its context ends (closing the file unblocks a pending read);
// Collect only reads counters.
package kmsg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
	"github.com/eagle-eye-ai/eagle-eye/probe/xid"
)

var (
	// Same shape as gpud's parser: the address (with or without "PCI:"), then the code.
	xidRE    = regexp.MustCompile(`NVRM: Xid \(((?:PCI:)?[0-9a-fA-F:.]+)\)[^:]*: (\d+),`)
	gpuAtRE  = regexp.MustCompile(`NVRM: GPU at (?:PCI:)?([0-9a-fA-F:.]+): (GPU-[0-9a-fA-F-]+)`)
	fallenRE = regexp.MustCompile(`NVRM: GPU (?:PCI:)?([0-9a-fA-F:.]+): GPU has fallen off the bus`)
	// /dev/kmsg record prefix: "priority,sequence,timestamp_us,flags[,...];".
	recordRE = regexp.MustCompile(`^\d+,\d+,\d+,[^;]*;`)
)

// Options configures the reader.
type Options struct {
	Path    string       // /dev/kmsg when empty
	Tracker *xid.Tracker // required
	Logger  *slog.Logger // discards when nil
	// Poll is how often a text file is checked for new lines at its end; 500 ms when zero.
	Poll time.Duration
}

// Reader follows the kernel log. It is both a probe.Collector and a probe.Runner.
type Reader struct {
	o   Options
	log *slog.Logger

	mu     sync.Mutex
	lines  uint64
	xids   uint64
	fallen map[string]uint64
	err    error // set when the log cannot be opened
}

// New returns a reader; it opens nothing until Run.
func New(o Options) (*Reader, error) {
	if o.Tracker == nil {
		return nil, errors.New("kmsg: no tracker")
	}
	if o.Path == "" {
		o.Path = "/dev/kmsg"
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reader{o: o, log: o.Logger, fallen: map[string]uint64{}}, nil
}

// Collect appends eagle_eye_gpu_fallen_off_bus_total per PCI address and the reader's own
// counters. It reports ErrUnavailable once Run found the log missing or unreadable.
func (r *Reader) Collect(_ context.Context, a *probe.Appender) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	src := []probe.Label{probe.L("path", r.o.Path)}
	a.Counter("eagle_eye_probe_kmsg_lines_total", float64(r.lines), src)
	a.Counter("eagle_eye_probe_kmsg_xid_lines_total", float64(r.xids), src)
	for pci, n := range r.fallen {
		a.Counter("eagle_eye_gpu_fallen_off_bus_total", float64(n), nil, probe.L("pci_bus_id", pci))
	}
	return nil
}

// Run reads the log until ctx ends.
func (r *Reader) Run(ctx context.Context) error {
	f, err := os.Open(r.o.Path)
	if err != nil {
		err = fmt.Errorf("kernel log: %w: %w", err, probe.ErrUnavailable)
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	stop := context.AfterFunc(ctx, func() { f.Close() }) // unblocks a read on /dev/kmsg
	defer stop()
	if st.Mode()&fs.ModeCharDevice != 0 {
		return r.readDevice(ctx, f)
	}
	defer f.Close()
	return r.follow(ctx, f)
}

// readDevice reads /dev/kmsg records until the file is closed.
func (r *Reader) readDevice(ctx context.Context, f *os.File) error {
	br := bufio.NewReaderSize(f, 16<<10)
	for ctx.Err() == nil {
		line, err := br.ReadString('\n')
		if line != "" {
			r.Line(line)
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			// EPIPE: records were overwritten before we read them; the next read goes on.
			if strings.Contains(err.Error(), "broken pipe") {
				r.log.Warn("kernel log records lost (ring buffer overrun)")
				continue
			}
			return fmt.Errorf("read %s: %w", r.o.Path, err)
		}
	}
	return nil
}

// follow reads a text file to its end, then polls it for more, like tail -F.
func (r *Reader) follow(ctx context.Context, f *os.File) error {
	br := bufio.NewReaderSize(f, 64<<10)
	var off int64
	partial := ""
	for ctx.Err() == nil {
		line, err := br.ReadString('\n')
		off += int64(len(line))
		if err == nil {
			r.Line(partial + line)
			partial = ""
			continue
		}
		if err != io.EOF {
			return fmt.Errorf("read %s: %w", r.o.Path, err)
		}
		partial += line // an unfinished last line: wait for its end
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(r.o.Poll):
		}
		if st, err := os.Stat(r.o.Path); err == nil && st.Size() < off { // truncated or rotated
			nf, err := os.Open(r.o.Path)
			if err != nil {
				continue
			}
			f.Close()
			f = nf
			defer nf.Close()
			br.Reset(f)
			off, partial = 0, ""
		}
	}
	return nil
}

// Line parses one kernel-log line (a /dev/kmsg record or a syslog/dmesg text line).
func (r *Reader) Line(line string) {
	if loc := recordRE.FindStringIndex(line); loc != nil {
		line = line[loc[1]:]
	} else if strings.HasPrefix(line, " ") {
		return // a /dev/kmsg continuation (KEY=value) line
	}
	r.mu.Lock()
	r.lines++
	r.mu.Unlock()
	if !strings.Contains(line, "NVRM: ") {
		return
	}
	if m := xidRE.FindStringSubmatch(line); m != nil {
		code, err := strconv.Atoi(m[2])
		if err != nil {
			return
		}
		r.mu.Lock()
		r.xids++
		r.mu.Unlock()
		r.o.Tracker.Record("kmsg", m[1], code, time.Now())
		return
	}
	if m := gpuAtRE.FindStringSubmatch(line); m != nil {
		r.o.Tracker.SetUUID(m[1], m[2])
		return
	}
	if m := fallenRE.FindStringSubmatch(line); m != nil {
		pci := xid.NormalizePCI(m[1])
		r.mu.Lock()
		r.fallen[pci]++
		r.mu.Unlock()
	}
}
