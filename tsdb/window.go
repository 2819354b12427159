package tsdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	ptsdb "github.com/prometheus/prometheus/tsdb"
)

// ErrTooManySeries is returned (wrapped) when a new series would exceed Options.MaxSeries.
var ErrTooManySeries = errors.New("too many active series")

// Options configures a Window. The zero value of each field means its default.
type Options struct {
	// Window is how much recent data is kept and queryable. Default 30m.
	Window time.Duration
	// OutOfOrderWindow accepts samples up to this much older than a series' newest sample.
	// 0 (the default) rejects out-of-order samples as Prometheus does by default. The head
	// releases out-of-order data only by compacting it, so with this set each truncation
	// moves it into small blocks in Dir, deleted once they fall out of the window.
	OutOfOrderWindow time.Duration
	// MaxSeries caps the active series in the window; a write creating more is refused for
	// the new series only. 0 means no limit.
	MaxSeries int
	// MaxExemplars is the size of the exemplar ring buffer. Default 100000; negative disables
	// exemplar storage.
	MaxExemplars int
	// TruncateInterval is how often data older than Window is dropped. Default Window/60,
	// at least 1s.
	TruncateInterval time.Duration
	// Dir is the scratch directory for memory-mapped head chunks. Empty means a new
	// temporary directory, removed by Close. Its contents are discarded at start.
	Dir string
	// Now returns the current time; default time.Now.
	Now func() time.Time

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Window is the in-memory window. See the package documentation.
type Window struct {
	opts    Options
	db      *ptsdb.DB
	dir     string
	tempDir bool
	cache   seriesCache
	meta    metadataStore
	metrics *windowMetrics
	logger  *slog.Logger

	closeOnce sync.Once
}

const defaultWindow = 30 * time.Minute

// New validates opts and opens the window's head. It starts no goroutine of its own; call
// Run to truncate.
func New(opts Options) (*Window, error) {
	if opts.Window == 0 {
		opts.Window = defaultWindow
	}
	if opts.Window < time.Minute {
		return nil, fmt.Errorf("window %s is shorter than the minimum of 1m", opts.Window)
	}
	if opts.OutOfOrderWindow < 0 || opts.OutOfOrderWindow > opts.Window {
		return nil, fmt.Errorf("out-of-order window %s must be between 0 and the window %s", opts.OutOfOrderWindow, opts.Window)
	}
	if opts.MaxSeries < 0 {
		return nil, fmt.Errorf("max series %d must not be negative", opts.MaxSeries)
	}
	if opts.MaxExemplars == 0 {
		opts.MaxExemplars = 100000
	}
	if opts.TruncateInterval <= 0 {
		opts.TruncateInterval = max(opts.Window/60, time.Second)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}

	w := &Window{opts: opts, logger: opts.Logger.With("component", "window")}
	w.dir = opts.Dir
	if w.dir == "" {
		d, err := os.MkdirTemp("", "eagle-eye-window-")
		if err != nil {
			return nil, fmt.Errorf("create window scratch directory: %w", err)
		}
		w.dir, w.tempDir = d, true
	} else {
		// Nothing in the scratch directory is meant to survive a restart.
		if err := os.RemoveAll(w.dir); err != nil {
			return nil, fmt.Errorf("clear window scratch directory: %w", err)
		}
		if err := os.MkdirAll(w.dir, 0o750); err != nil {
			return nil, fmt.Errorf("create window scratch directory: %w", err)
		}
	}

	dbOpts := ptsdb.DefaultOptions()
	dbOpts.WALSegmentSize = -1 // no write-ahead log: the window is memory only.
	dbOpts.NoLockfile = true
	// The head accepts samples back to maxt - chunkRange/2: make that the whole window.
	rangeMs := 2 * opts.Window.Milliseconds()
	dbOpts.MinBlockDuration = rangeMs
	dbOpts.MaxBlockDuration = rangeMs
	dbOpts.RetentionDuration = rangeMs
	dbOpts.OutOfOrderTimeWindow = opts.OutOfOrderWindow.Milliseconds()
	dbOpts.EnableExemplarStorage = opts.MaxExemplars > 0
	dbOpts.MaxExemplars = int64(max(opts.MaxExemplars, 0))
	dbOpts.SeriesLifecycleCallback = &seriesLifecycle{w: w}

	reg := prometheus.WrapRegistererWith(prometheus.Labels{"component": "window"}, opts.Registerer)
	db, err := ptsdb.Open(w.dir, opts.Logger.With("component", "window_head"), reg, dbOpts, nil)
	if err != nil {
		w.removeTemp()
		return nil, fmt.Errorf("open window head: %w", err)
	}
	// Blocks are never cut: the head is truncated in place by Run.
	db.DisableCompactions()
	w.db = db
	w.metrics = newWindowMetrics(opts.Registerer, w)
	w.cache.init()
	w.meta.init()
	return w, nil
}

// Run truncates the window every TruncateInterval until ctx ends. It returns nil then.
func (w *Window) Run(ctx context.Context) error {
	t := time.NewTicker(w.opts.TruncateInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := w.Truncate(); err != nil {
				w.logger.Error("truncate window", "err", err)
			}
		}
	}
}

// Truncate drops everything older than Window from the head now.
func (w *Window) Truncate() error {
	start := time.Now()
	now := w.opts.Now()
	mint := now.Add(-w.opts.Window).UnixMilli()
	if w.opts.OutOfOrderWindow > 0 {
		// The head releases out-of-order chunks only once they are compacted: move them into
		// small blocks in the scratch directory, which retention removes after the window.
		if err := w.db.CompactOOOHead(context.Background()); err != nil {
			w.metrics.truncations.WithLabelValues("error").Inc()
			return fmt.Errorf("compact out-of-order data: %w", err)
		}
	}
	if err := w.db.Head().Truncate(mint); err != nil {
		w.metrics.truncations.WithLabelValues("error").Inc()
		return err
	}
	w.metrics.truncations.WithLabelValues("success").Inc()
	w.metrics.truncateDuration.Observe(time.Since(start).Seconds())
	return nil
}

// Close releases the head and removes a temporary scratch directory.
func (w *Window) Close() error {
	var err error
	w.closeOnce.Do(func() {
		err = w.db.Close()
		w.removeTemp()
	})
	return err
}

func (w *Window) removeTemp() {
	if w.tempDir {
		_ = os.RemoveAll(w.dir)
	}
}

// Querier implements storage.Queryable.
func (w *Window) Querier(mint, maxt int64) (storage.Querier, error) {
	return w.db.Querier(mint, maxt)
}

// ChunkQuerier implements storage.ChunkQueryable.
func (w *Window) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return w.db.ChunkQuerier(mint, maxt)
}

// ExemplarQuerier implements storage.ExemplarQueryable.
func (w *Window) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	return w.db.ExemplarQuerier(ctx)
}

// NumSeries is the number of active series in the window.
func (w *Window) NumSeries() uint64 { return w.db.Head().NumSeries() }

// Span returns the oldest and newest sample times in the window, in milliseconds.
func (w *Window) Span() (mint, maxt int64) {
	h := w.db.Head()
	return h.MinTime(), h.MaxTime()
}

// Stats returns the head's cardinality statistics, as served by /api/v1/status/tsdb.
func (w *Window) Stats(statsByLabelName string, limit int) (*ptsdb.Stats, error) {
	return w.db.Head().Stats(statsByLabelName, limit), nil
}

// WALReplayStatus reports no replay: the window has no write-ahead log.
func (w *Window) WALReplayStatus() (ptsdb.WALReplayStatus, error) {
	return ptsdb.WALReplayStatus{}, nil
}

func (w *Window) checkSeriesLimit() error {
	if limit := w.opts.MaxSeries; limit > 0 && w.db != nil {
		if n := w.db.Head().NumSeries(); n >= uint64(limit) {
			return fmt.Errorf("%w: the window holds %d series (limit %d, set by limits.max_series)", ErrTooManySeries, n, limit)
		}
	}
	return nil
}

// AppenderV2 implements storage.AppendableV2 for in-process writers such as rule evaluation
// (recording rules and the ALERTS series).
func (w *Window) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return w.db.AppenderV2(ctx)
}
