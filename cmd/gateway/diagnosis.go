package main

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/diagnosis"
	"github.com/eagle-eye-ai/eagle-eye/fanout/hotseries"
	bundled "github.com/eagle-eye-ai/eagle-eye/rules"
)

// ruleSources returns the rule-file globs and the catalog path: the flags', or the bundled
// copies written out under --storage.dir (a temporary directory without one), since the
// rules manager loads rules from files. cleanup removes a temporary directory.
func ruleSources(f *Flags) (files []string, catalog string, cleanup func(), err error) {
	files, catalog, cleanup = f.RuleFiles, f.CatalogFile, func() {}
	if len(files) > 0 && catalog != "" {
		return files, catalog, cleanup, nil
	}
	var dir string
	if f.DataDir != "" {
		dir = filepath.Join(f.DataDir, "rules")
		if err := os.RemoveAll(dir); err != nil {
			return nil, "", nil, fmt.Errorf("bundled rules: %w", err)
		}
	} else {
		if dir, err = os.MkdirTemp("", "eagle-eye-rules-"); err != nil {
			return nil, "", nil, fmt.Errorf("bundled rules: %w", err)
		}
		cleanup = func() { _ = os.RemoveAll(dir) }
	}
	sub, err := fs.Sub(bundled.FS, ".")
	if err != nil {
		cleanup()
		return nil, "", nil, err
	}
	if err := os.CopyFS(dir, sub); err != nil {
		cleanup()
		return nil, "", nil, fmt.Errorf("write bundled rules to %s: %w", dir, err)
	}
	if len(files) == 0 {
		files = []string{filepath.Join(dir, "*.rules.yml")}
	}
	if catalog == "" {
		catalog = filepath.Join(dir, "catalog.yaml")
	}
	return files, catalog, cleanup, nil
}

// reloadHandler serves POST /-/reload: 200 when the rules, catalog and alerting configuration
// were reloaded, 400 with the file and line when they were refused (the previous ones stay).
func reloadHandler(reload func() error, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err := reload(); err != nil {
			logger.Error("reload refused; the previous rules, catalog and alerting configuration stay", "err", err)
			http.Error(w, "reload refused, previous rules, catalog and alerting configuration kept: "+err.Error(), http.StatusBadRequest)
			return
		}
		logger.Info("rules, catalog and alerting configuration reloaded")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, "rules, catalog and alerting configuration reloaded")
	})
}

// diagnosisPublisher sends diagnosis reports over the hot-series NATS connection.
type diagnosisPublisher struct{ hot *hotseries.Publisher }

func (p diagnosisPublisher) PublishDiagnosis(ctx context.Context, subject string, payload []byte) error {
	return p.hot.Publish(ctx, subject, payload)
}

// hardwareDiagnosis annotates the hardware group's per-node messages with the diagnosis of
// the node's devices, so routers see a faulty node in the same feed as its load.
func hardwareDiagnosis(d *diagnosis.Diagnoser) func(group string, endpoint map[string]string) map[string]string {
	var (
		mu     sync.Mutex
		at     time.Time
		byNode map[string]diagnosis.DeviceState
	)
	return func(group string, endpoint map[string]string) map[string]string {
		if group != "hardware" {
			return nil
		}
		node := endpoint["node"]
		if node == "" {
			node = endpoint["Hostname"]
		}
		mu.Lock()
		// The device states change at most once per evaluation: rebuild the per-node view
		// at most once a second, not for every message.
		if time.Since(at) > time.Second {
			byNode = map[string]diagnosis.DeviceState{}
			for _, st := range d.DeviceStates() {
				if st.Healthy || st.Via != "" {
					continue
				}
				if old, ok := byNode[st.Node]; !ok || st.RouterAction.Rank() > old.RouterAction.Rank() {
					byNode[st.Node] = st
				}
			}
			at = time.Now()
		}
		st, faulty := byNode[node]
		mu.Unlock()
		if !faulty {
			return map[string]string{"health": "healthy"}
		}
		return map[string]string{
			"health": "faulty", "pattern": st.Pattern, "severity": st.Severity,
			"router_action": string(st.RouterAction), "report_id": st.ReportID,
		}
	}
}
