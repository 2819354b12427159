package forward

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A shard's progress lives in its own small file, shard-NNNN.pos, in two alternating 32-byte
// slots so that a torn write leaves the other slot intact. The relay is the last "shard"
// (index = shards), and the count stored is the shards plus the relay:
//
//	uint64 sequence, uint64 done, uint64 attempted, uint32 shard count, uint32 CRC-32C of the rest
//
// done: every record before it has been sent by this shard (or held nothing for it).
// attempted: the end of the batch being sent when the slot was written. A shard writes its slot
// before every send, so after a crash the records in [done, attempted) may or may not have
// reached the destination and the records from attempted on certainly have not.
const progressSlot = 32

type progressFile struct {
	f   *os.File
	seq uint64
	buf [2 * progressSlot]byte
}

type shardProgress struct {
	done, attempted pos
	shards          int
}

func progressPath(dir string, shard int) string {
	return filepath.Join(dir, fmt.Sprintf("shard-%04d.pos", shard))
}

// loadProgress reads every shard's progress file in dir, keyed by shard index.
func loadProgress(dir string) map[int]shardProgress {
	out := map[int]shardProgress{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), "shard-")
		if !ok {
			continue
		}
		name, ok = strings.CutSuffix(name, ".pos")
		if !ok {
			continue
		}
		idx, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var best *shardProgress
		bestSeq := uint64(0)
		for i := 0; i+progressSlot <= len(b) && i < 2*progressSlot; i += progressSlot {
			s := b[i : i+progressSlot]
			if crc32.Checksum(s[:28], castagnoli) != binary.LittleEndian.Uint32(s[28:]) {
				continue
			}
			seq := binary.LittleEndian.Uint64(s)
			if best == nil || seq > bestSeq {
				best = &shardProgress{
					done:      pos(binary.LittleEndian.Uint64(s[8:])),
					attempted: pos(binary.LittleEndian.Uint64(s[16:])),
					shards:    int(binary.LittleEndian.Uint32(s[24:])),
				}
				bestSeq = seq
			}
		}
		if best != nil {
			out[idx] = *best
		}
	}
	return out
}

// startPositions turns saved progress into each of n shards' start position and the end of
// the range they must send apart from newer data ("maybe sent"). With the same shard count as
// before, each shard resumes where it was; otherwise every shard resumes from the oldest done
// position and treats everything up to the newest attempted one as maybe sent.
func startPositions(saved map[int]shardProgress, n int) (start, maybeUntil []pos) {
	start, maybeUntil = make([]pos, n), make([]pos, n)
	same := len(saved) == n
	for i := 0; i < n && same; i++ {
		sp, ok := saved[i]
		same = ok && sp.shards == n
	}
	if same {
		for i := range n {
			start[i] = saved[i].done
			maybeUntil[i] = max(saved[i].done, saved[i].attempted)
		}
		return start, maybeUntil
	}
	var lo, hi pos
	first := true
	for _, sp := range saved {
		if first {
			lo, hi = sp.done, max(sp.done, sp.attempted)
			first = false
			continue
		}
		lo = min(lo, sp.done)
		hi = max(hi, sp.done, sp.attempted)
	}
	for i := range n {
		start[i], maybeUntil[i] = lo, hi
	}
	return start, maybeUntil
}

// openProgress creates or opens shard idx's file, removing those of shards that no longer exist.
func openProgress(dir string, idx, n int) (*progressFile, error) {
	if idx == 0 {
		for i := n; ; i++ {
			if err := os.Remove(progressPath(dir, i)); err != nil {
				break
			}
		}
	}
	f, err := os.OpenFile(progressPath(dir, idx), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	p := &progressFile{f: f}
	// Continue the sequence of the slots already there, so the next write wins over both.
	var b [2 * progressSlot]byte
	got, _ := f.ReadAt(b[:], 0)
	for i := 0; i+progressSlot <= got; i += progressSlot {
		s := b[i : i+progressSlot]
		if crc32.Checksum(s[:28], castagnoli) == binary.LittleEndian.Uint32(s[28:]) {
			p.seq = max(p.seq, binary.LittleEndian.Uint64(s))
		}
	}
	return p, nil
}

// write stores the progress in the next slot; with sync it also fsyncs. A process crash after
// write returns keeps it either way (it is in the page cache).
func (p *progressFile) write(sp shardProgress, sync bool) error {
	p.seq++
	slot := int(p.seq % 2)
	s := p.buf[slot*progressSlot : (slot+1)*progressSlot]
	binary.LittleEndian.PutUint64(s, p.seq)
	binary.LittleEndian.PutUint64(s[8:], uint64(sp.done))
	binary.LittleEndian.PutUint64(s[16:], uint64(sp.attempted))
	binary.LittleEndian.PutUint32(s[24:], uint32(sp.shards))
	binary.LittleEndian.PutUint32(s[28:], crc32.Checksum(s[:28], castagnoli))
	if _, err := p.f.WriteAt(s, int64(slot*progressSlot)); err != nil {
		return err
	}
	if sync {
		return p.f.Sync()
	}
	return nil
}

func (p *progressFile) close() error { return p.f.Close() }
