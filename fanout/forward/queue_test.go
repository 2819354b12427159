package forward

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func testQueue(t *testing.T, dir string, segBytes, maxBytes int64) *queue {
	t.Helper()
	q, err := openQueue(queueOptions{dir: dir, segBytes: segBytes, maxBytes: maxBytes, memLimit: 1 << 20, logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	q.setShards([]pos{0})
	return q
}

// fakeRecord is a frame holding a record header followed by a recognisable payload.
func fakeRecord(i int, size int) []byte {
	var e recordEncoder
	e.reset(time.Now().UnixMilli())
	e.samples = 1
	e.buf = append(e.buf, fmt.Sprintf("rec-%06d|", i)...)
	e.buf = append(e.buf, bytes.Repeat([]byte{byte(i)}, size)...)
	return e.finish()
}

// appendAny appends a frame to whatever segment is active.
func appendAny(q *queue, frame []byte) (uint64, error) {
	for {
		seq, err := q.appendIn(frame, q.activeSegment())
		if err != errRotated {
			return seq, err
		}
	}
}

// readAll returns every record from the start of the queue, in order.
func readAll(t *testing.T, q *queue) [][]byte {
	t.Helper()
	var r segReader
	defer r.close()
	var out [][]byte
	p := pos(0)
	for {
		data, _, end, wait, err := q.next(&r, p)
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		if wait != nil {
			return out
		}
		out = append(out, append([]byte(nil), data...))
		p = end
	}
}

func TestQueueTornTail(t *testing.T) {
	dir := t.TempDir()
	q := testQueue(t, dir, 4096, 1<<30)
	var want [][]byte
	for i := range 20 {
		rec := fakeRecord(i, 300)
		if _, err := appendAny(q, rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec[frameHdrLen:])
	}
	if err := q.close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 2 {
		t.Fatalf("want several segments, got %v", segs)
	}
	// The crash: the newest segment ends in half a frame.
	last := segs[len(segs)-1]
	st, _ := os.Stat(last)
	f, err := os.OpenFile(last, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the last frame in half.
	if err := f.Truncate(st.Size() - 150); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want = want[:len(want)-1]

	q = testQueue(t, dir, 4096, 1<<30)
	got := readAll(t, q)
	if len(got) != len(want) {
		t.Fatalf("after recovery %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
	if st2, _ := os.Stat(last); st2.Size() >= st.Size()-150 {
		t.Errorf("torn tail not truncated: %d bytes", st2.Size())
	}
	// New appends continue after the recovered data.
	rec := fakeRecord(99, 10)
	if _, err := appendAny(q, rec); err != nil {
		t.Fatal(err)
	}
	got = readAll(t, q)
	if len(got) != len(want)+1 || !bytes.Equal(got[len(got)-1], rec[frameHdrLen:]) {
		t.Fatalf("append after recovery: %d records", len(got))
	}
	q.close()

	// A corrupt byte in the middle of a frame: that frame and the rest of its segment go.
	q = testQueue(t, dir, 4096, 1<<30)
	q.close()
	segs, _ = filepath.Glob(filepath.Join(dir, "*.seg"))
	f, _ = os.OpenFile(segs[0], os.O_RDWR, 0)
	_, _ = f.WriteAt([]byte{0xde, 0xad}, segHdrLen+frameHdrLen+20)
	f.Close()
	q = testQueue(t, dir, 4096, 1<<30)
	defer q.close()
	got = readAll(t, q)
	if len(got) == 0 || len(got) >= len(want)+1 {
		t.Fatalf("after corruption in the first segment: %d records", len(got))
	}
	if bytes.Equal(got[0], want[0]) {
		t.Fatalf("corrupt record returned")
	}
}

func TestQueueGroupCommit(t *testing.T) {
	q := testQueue(t, t.TempDir(), 1<<20, 1<<30)
	defer q.close()
	var wg sync.WaitGroup
	const writers, each = 8, 50
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				seq, err := appendAny(q, fakeRecord(w*each+i, 100))
				if err == nil {
					err = q.waitDurable(seq)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := q.fsyncs.Load(); n == 0 || n > writers*each {
		t.Fatalf("%d fsyncs for %d writes", n, writers*each)
	}
	t.Logf("%d fsyncs for %d durable appends", q.fsyncs.Load(), writers*each)
	if got := readAll(t, q); len(got) != writers*each {
		t.Fatalf("read %d records, want %d", len(got), writers*each)
	}
}

func TestQueueSizeBound(t *testing.T) {
	var dropped int64
	q, err := openQueue(queueOptions{dir: t.TempDir(), segBytes: 64 << 10, maxBytes: 256 << 10, memLimit: 1 << 20,
		logger: slog.New(slog.DiscardHandler), onDrop: func(_ string, n int64) { dropped += n }})
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	q.setShards([]pos{0})
	for i := range 2000 {
		if _, err := appendAny(q, fakeRecord(i, 500)); err != nil {
			t.Fatal(err)
		}
	}
	st := q.stats()
	if st.DiskBytes > 256<<10+64<<10 {
		t.Fatalf("queue holds %d bytes, bound 256KiB", st.DiskBytes)
	}
	got := readAll(t, q)
	if dropped == 0 || int(dropped)+len(got) != 2000 {
		t.Fatalf("dropped %d + readable %d != 2000", dropped, len(got))
	}
	// What is left is the newest data.
	if !bytes.Contains(got[len(got)-1], []byte("rec-001999|")) {
		t.Fatalf("newest record missing")
	}
}
