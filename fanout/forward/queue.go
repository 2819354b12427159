package forward

import (
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// On disk a queue is a directory of segment files named by a decimal id (00000001.seg, ...).
// A segment starts with segMagic, then frames: uint32 payload length, uint32 CRC-32C of the
// payload, payload (one record). Positions are (segment id << 32 | byte offset).
const (
	segMagic    = "EEFWDQ01"
	segHdrLen   = int64(len(segMagic))
	frameHdrLen = 8
	maxRecord   = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type pos uint64

func mkpos(seg uint32, off int64) pos { return pos(uint64(seg)<<32 | uint64(off)) }
func (p pos) seg() uint32             { return uint32(p >> 32) }
func (p pos) off() int64              { return int64(p & 0xffffffff) }

// recIdx indexes one record of a segment.
type recIdx struct {
	off uint32 // frame start
	cum uint32 // samples in the segment's records before this one
	ts  int64  // enqueue time, unix ms
}

type segment struct {
	id      uint32
	size    int64
	samples int64
	recs    []recIdx
}

func (s *segment) lastTS() int64 {
	if len(s.recs) == 0 {
		return 0
	}
	return s.recs[len(s.recs)-1].ts
}

// find returns the index of the first record starting at or after off.
func (s *segment) find(off int64) int {
	return sort.Search(len(s.recs), func(i int) bool { return int64(s.recs[i].off) >= off })
}

// samplesFrom counts the samples of the records starting at or after off.
func (s *segment) samplesFrom(off int64) int64 {
	i := s.find(off)
	if i == len(s.recs) {
		return 0
	}
	return s.samples - int64(s.recs[i].cum)
}

type memRec struct {
	p, end pos
	data   []byte
}

// queue is one destination's crash-safe FIFO of records. Appends come from any goroutine;
// each shard reads the whole queue at its own position and picks its own series.
//
// Lock order: syncMu before mu. mu guards everything but the fields marked atomic; no disk I/O
// is done under mu except the append's write and a segment rotation.
type queue struct {
	dir      string
	segBytes int64
	maxBytes int64
	maxAge   time.Duration
	memLimit int64
	logger   *slog.Logger
	onDrop   func(reason string, samples int64)

	syncMu  sync.Mutex
	synced  atomic.Uint64 // appended bytes known durable
	fsyncs  atomic.Int64
	fsyncNs atomic.Int64

	mu       sync.Mutex
	segs     []*segment // ascending, contiguous ids; the last one is active
	active   *os.File
	written  uint64 // bytes appended since open (group-commit sequence)
	total    int64  // bytes on disk
	mem      []memRec
	memBytes int64
	notify   chan struct{}
	readPos  []pos         // per shard: next record to read
	donePos  []pos         // per shard: everything before it is sent
	doneWait chan struct{} // closed at the next change of a done position; nil when nobody waits
	closed   bool
	frame    []byte
}

type queueOptions struct {
	dir                string
	segBytes, maxBytes int64
	maxAge             time.Duration
	memLimit           int64
	logger             *slog.Logger
	onDrop             func(reason string, samples int64)
}

// openQueue recovers the queue in dir: it checks every frame's CRC, truncates a torn tail (and
// anything after a corrupt frame), and starts a new active segment.
func openQueue(o queueOptions) (*queue, error) {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, err
	}
	q := &queue{
		dir: o.dir, segBytes: o.segBytes, maxBytes: o.maxBytes, maxAge: o.maxAge,
		memLimit: o.memLimit, logger: o.logger, onDrop: o.onDrop,
		notify: make(chan struct{}),
	}
	ents, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, err
	}
	var ids []uint32
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || e.IsDir() {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 32)
		if err != nil || id == 0 {
			continue
		}
		ids = append(ids, uint32(id))
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	// Keep the newest run of contiguous ids: a gap means older files a crash left half deleted.
	for i := len(ids) - 1; i > 0; i-- {
		if ids[i-1] != ids[i]-1 {
			for _, id := range ids[:i] {
				_ = os.Remove(q.segPath(id))
			}
			ids = ids[i:]
			break
		}
	}
	for _, id := range ids {
		s, err := q.recover(id)
		if err != nil {
			return nil, err
		}
		q.segs = append(q.segs, s)
		q.total += s.size
	}
	next := uint32(1)
	if n := len(q.segs); n > 0 {
		next = q.segs[n-1].id + 1
	}
	if err := q.createSegment(next); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *queue) segPath(id uint32) string {
	return filepath.Join(q.dir, fmt.Sprintf("%08d.seg", id))
}

// createSegment starts segment id as the active one. Called with mu held (or before use).
func (q *queue) createSegment(id uint32) error {
	f, err := os.OpenFile(q.segPath(id), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(segMagic)); err != nil {
		f.Close()
		return err
	}
	if err := syncDir(q.dir); err != nil {
		f.Close()
		return err
	}
	q.active = f
	q.segs = append(q.segs, &segment{id: id, size: segHdrLen})
	q.total += segHdrLen
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// setShards sizes the per-shard positions; each starts at start[i] (or the queue's first record).
func (q *queue) setShards(start []pos) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.readPos = append([]pos(nil), start...)
	q.donePos = append([]pos(nil), start...)
}

// appendIn writes one frame built by recordEncoder (frame header, then the record) to segment
// seg and returns its sequence for waitDurable. If seg is no longer the active segment, or the
// frame does not fit in it, it starts the next segment if need be and returns errRotated
// without writing: the record was encoded for seg (see record.go). The queue keeps frame.
// It never waits for senders: it fails only when the disk does.
func (q *queue) appendIn(frame []byte, seg uint32) (uint64, error) {
	rec := frame[frameHdrLen:]
	if len(rec) > maxRecord {
		return 0, fmt.Errorf("record of %d bytes is over the %d-byte limit", len(rec), maxRecord)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, errClosed
	}
	s := q.segs[len(q.segs)-1]
	if s.id != seg {
		return 0, errRotated
	}
	if s.size+int64(len(frame)) > q.segBytes && len(s.recs) > 0 {
		if err := q.rotate(); err != nil {
			return 0, err
		}
		return 0, errRotated
	}
	if _, err := q.active.Write(frame); err != nil {
		// A short write leaves a torn frame; the next open truncates it. Start a fresh segment
		// so later appends do not land after the garbage.
		if rerr := q.rotate(); rerr != nil {
			q.logger.Error("queue segment rotation after a failed write failed", "err", rerr)
		}
		return 0, err
	}
	p := mkpos(s.id, s.size)
	s.recs = append(s.recs, recIdx{off: uint32(s.size), cum: uint32(s.samples), ts: recordTime(rec)})
	s.samples += int64(recordSamples(rec))
	s.size += int64(len(frame))
	q.total += int64(len(frame))
	q.written += uint64(len(frame))
	seq := q.written

	q.mem = append(q.mem, memRec{p: p, end: mkpos(s.id, s.size), data: rec})
	q.memBytes += int64(len(frame))
	for q.memBytes > q.memLimit && len(q.mem) > 0 {
		q.memBytes -= int64(len(q.mem[0].data) + frameHdrLen)
		q.mem[0] = memRec{}
		q.mem = q.mem[1:]
	}
	for q.total > q.maxBytes && len(q.segs) > 1 {
		q.dropOldest("max_queue_bytes")
	}
	close(q.notify)
	q.notify = make(chan struct{})
	return seq, nil
}

// activeSegment is the id of the segment appends go to.
func (q *queue) activeSegment() uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.segs[len(q.segs)-1].id
}

var errRotated = errors.New("queue segment changed")

var errClosed = errors.New("forward queue closed")

// rotate seals the active segment (fsynced, so it never needs a torn-tail check) and starts the
// next. Called with mu held.
func (q *queue) rotate() error {
	if err := q.active.Sync(); err != nil {
		return err
	}
	q.active.Close()
	storeMax(&q.synced, q.written)
	return q.createSegment(q.segs[len(q.segs)-1].id + 1)
}

func storeMax(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if old >= v || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// minPos returns the smallest of ps, or the head when there are no shards.
func (q *queue) minPos(ps []pos) pos {
	if len(ps) == 0 {
		s := q.segs[len(q.segs)-1]
		return mkpos(s.id, s.size)
	}
	m := ps[0]
	for _, p := range ps[1:] {
		m = min(m, p)
	}
	return m
}

// dropOldest removes the oldest segment, counting the samples some shard had not yet read.
// Called with mu held and more than one segment.
func (q *queue) dropOldest(reason string) {
	s := q.segs[0]
	lost := int64(0)
	if r := q.minPos(q.readPos); r.seg() <= s.id {
		off := r.off()
		if r.seg() < s.id {
			off = 0
		}
		lost = s.samplesFrom(off)
	}
	q.removeFirst()
	if lost > 0 && q.onDrop != nil {
		q.onDrop(reason, lost)
	}
}

func (q *queue) removeFirst() {
	s := q.segs[0]
	if err := os.Remove(q.segPath(s.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		q.logger.Warn("remove queue segment", "err", err)
	}
	q.total -= s.size
	q.segs = q.segs[1:]
	next := mkpos(q.segs[0].id, segHdrLen)
	for len(q.mem) > 0 && q.mem[0].p < next {
		q.memBytes -= int64(len(q.mem[0].data) + frameHdrLen)
		q.mem[0] = memRec{}
		q.mem = q.mem[1:]
	}
}

// maintain deletes segments every shard has sent, and those past the age bound.
func (q *queue) maintain(now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	done := q.minPos(q.donePos)
	for len(q.segs) > 1 && q.segs[0].id < done.seg() {
		q.removeFirst()
	}
	if q.maxAge <= 0 {
		return
	}
	cut := now.Add(-q.maxAge).UnixMilli()
	for len(q.segs) > 1 && q.segs[0].lastTS() < cut {
		q.dropOldest("max_age")
	}
	if a := q.segs[len(q.segs)-1]; len(q.segs) == 1 && len(a.recs) > 0 && a.lastTS() < cut {
		if err := q.rotate(); err == nil {
			q.dropOldest("max_age")
		}
	}
}

// waitDurable returns once the append that returned seq is on disk. Concurrent callers share
// one fsync: whoever takes syncMu syncs everything written so far.
func (q *queue) waitDurable(seq uint64) error {
	for q.synced.Load() < seq {
		if err := q.syncNow(); err != nil {
			return err
		}
	}
	return nil
}

// syncNow fsyncs everything appended so far.
func (q *queue) syncNow() error {
	q.syncMu.Lock()
	defer q.syncMu.Unlock()
	q.mu.Lock()
	target, f := q.written, q.active
	q.mu.Unlock()
	if q.synced.Load() >= target {
		return nil
	}
	start := time.Now()
	err := f.Sync()
	if errors.Is(err, os.ErrClosed) {
		return nil // rotated meanwhile: the rotation synced it
	}
	if err != nil {
		return fmt.Errorf("fsync forward queue: %w", err)
	}
	q.fsyncs.Add(1)
	q.fsyncNs.Add(int64(time.Since(start)))
	storeMax(&q.synced, target)
	return nil
}

// next returns the record at or after p for a shard: its data, its start and end, or nil and a
// channel closed on the next append when there is none yet. Records before the first live
// segment are skipped (they were dropped).
func (q *queue) next(r *segReader, p pos) (data []byte, start, end pos, wait <-chan struct{}, err error) {
	q.mu.Lock()
	for {
		first, last := q.segs[0], q.segs[len(q.segs)-1]
		if p.seg() < first.id {
			p = mkpos(first.id, segHdrLen)
		}
		if p.seg() > last.id {
			p = mkpos(last.id, segHdrLen) // a position from a queue that no longer exists
		}
		s := q.segs[int(p.seg()-first.id)]
		if p.off() < segHdrLen {
			p = mkpos(s.id, segHdrLen)
		}
		i := s.find(p.off())
		if i == len(s.recs) {
			if s == q.segs[len(q.segs)-1] {
				w := q.notify
				q.mu.Unlock()
				return nil, p, p, w, nil
			}
			p = mkpos(s.id+1, segHdrLen)
			continue
		}
		p = mkpos(s.id, int64(s.recs[i].off))
		recEnd := s.size
		if i+1 < len(s.recs) {
			recEnd = int64(s.recs[i+1].off)
		}
		end = mkpos(s.id, recEnd)
		if n := len(q.mem); n > 0 && p >= q.mem[0].p {
			j := sort.Search(n, func(k int) bool { return q.mem[k].p >= p })
			if j < n && q.mem[j].p == p {
				data = q.mem[j].data
				q.mu.Unlock()
				return data, p, end, nil, nil
			}
		}
		q.mu.Unlock()
		data, err = r.read(q, p, recEnd-p.off())
		if err != nil {
			// The segment may have been dropped under us, or the frame is corrupt: either way
			// move past this record.
			q.mu.Lock()
			if p.seg() >= q.segs[0].id {
				q.mu.Unlock()
				q.logger.Warn("forward queue record unreadable; skipping it", "segment", q.segPath(p.seg()), "offset", p.off(), "err", err)
				return nil, p, end, nil, errCorrupt
			}
			continue
		}
		return data, p, end, nil, nil
	}
}

// progress records a shard's read and done positions; positions before every shard's done
// position may be deleted, and in-memory copies before every read position are released.
func (q *queue) progress(shard int, read, done pos) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if shard >= len(q.readPos) {
		return
	}
	q.readPos[shard] = read
	if q.donePos[shard] != done && q.doneWait != nil {
		close(q.doneWait)
		q.doneWait = nil
	}
	q.donePos[shard] = done
	m := q.minPos(q.readPos)
	for len(q.mem) > 0 && q.mem[0].end <= m {
		q.memBytes -= int64(len(q.mem[0].data) + frameHdrLen)
		q.mem[0] = memRec{}
		q.mem = q.mem[1:]
	}
}

// doneBy reports whether shards [lo, hi) have all sent everything before p; if not, it also
// returns a channel closed at the next change of any shard's done position.
func (q *queue) doneBy(lo, hi int, p pos) (bool, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := lo; i < hi && i < len(q.donePos); i++ {
		if q.donePos[i] < p {
			if q.doneWait == nil {
				q.doneWait = make(chan struct{})
			}
			return false, q.doneWait
		}
	}
	return true, nil
}

// queueStats is a snapshot for metrics and status.
type queueStats struct {
	DiskBytes     int64
	Segments      int
	PendingRecs   int64
	PendingSamps  int64
	OldestPending time.Time
	MemBytes      int64
	Head          pos
}

func (q *queue) stats() queueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := queueStats{DiskBytes: q.total, Segments: len(q.segs), MemBytes: q.memBytes}
	last := q.segs[len(q.segs)-1]
	st.Head = mkpos(last.id, last.size)
	done := q.minPos(q.donePos)
	for _, s := range q.segs {
		if s.id < done.seg() {
			continue
		}
		off := int64(0)
		if s.id == done.seg() {
			off = done.off()
		}
		i := s.find(off)
		if i == len(s.recs) {
			continue
		}
		if st.OldestPending.IsZero() {
			st.OldestPending = time.UnixMilli(s.recs[i].ts)
		}
		st.PendingRecs += int64(len(s.recs) - i)
		st.PendingSamps += s.samples - int64(s.recs[i].cum)
	}
	return st
}

// close fsyncs and closes the active segment; appends fail afterwards.
func (q *queue) close() error {
	err := q.syncNow()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	if cerr := q.active.Close(); err == nil {
		err = cerr
	}
	close(q.notify)
	q.notify = make(chan struct{})
	return err
}
