package forward

import (
	"bufio"
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
)

// recover scans one segment, indexing its records and truncating it at the first bad frame.
func (q *queue) recover(id uint32) (*segment, error) {
	path := q.segPath(id)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s := &segment{id: id, size: segHdrLen}
	r := bufio.NewReaderSize(f, 1<<20)
	hdr := make([]byte, segHdrLen)
	if _, err := io.ReadFull(r, hdr); err != nil || string(hdr) != segMagic {
		q.logger.Warn("queue segment has no valid header; discarding it", "segment", path)
		if err := f.Truncate(0); err != nil {
			return nil, err
		}
		if _, err := f.WriteAt([]byte(segMagic), 0); err != nil {
			return nil, err
		}
		return s, f.Sync()
	}
	var buf []byte
	var fh [frameHdrLen]byte
	for {
		off := s.size
		if _, err := io.ReadFull(r, fh[:]); err != nil {
			break
		}
		n := int64(binary.LittleEndian.Uint32(fh[:]))
		if n < recHeaderLen || n > maxRecord || off+frameHdrLen+n > st.Size() {
			break
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			break
		}
		if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(fh[4:]) {
			break
		}
		s.recs = append(s.recs, recIdx{off: uint32(off), cum: uint32(s.samples), ts: recordTime(buf)})
		s.samples += int64(recordSamples(buf))
		s.size = off + frameHdrLen + n
	}
	if s.size < st.Size() {
		q.logger.Warn("queue segment ends in a torn or corrupt frame; truncating it",
			"segment", path, "valid_bytes", s.size, "file_bytes", st.Size())
		if err := f.Truncate(s.size); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// segReader reads records from segment files for one shard.
type segReader struct {
	f   *os.File
	id  uint32
	hdr [frameHdrLen]byte
}

func (r *segReader) read(q *queue, p pos, frameLen int64) ([]byte, error) {
	if r.f == nil || r.id != p.seg() {
		r.close()
		f, err := os.Open(q.segPath(p.seg()))
		if err != nil {
			return nil, err
		}
		r.f, r.id = f, p.seg()
	}
	if _, err := r.f.ReadAt(r.hdr[:], p.off()); err != nil {
		return nil, err
	}
	n := int64(binary.LittleEndian.Uint32(r.hdr[:]))
	if n != frameLen-frameHdrLen {
		return nil, errCorrupt
	}
	buf := make([]byte, n)
	if _, err := r.f.ReadAt(buf, p.off()+frameHdrLen); err != nil {
		return nil, err
	}
	if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(r.hdr[4:]) {
		return nil, errCorrupt
	}
	return buf, nil
}

func (r *segReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}
