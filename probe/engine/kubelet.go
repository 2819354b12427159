package engine

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

// KubeletOptions configures discovery from the kubelet's /pods list.
type KubeletOptions struct {
	URL string // e.g. https://127.0.0.1:10250/pods
	// TokenFile holds the bearer token sent to the kubelet; none when empty. In a pod:
	// /var/run/secrets/kubernetes.io/serviceaccount/token.
	TokenFile string
	// InsecureSkipVerify accepts the kubelet's self-signed serving certificate.
	InsecureSkipVerify bool
	Refresh            time.Duration // how often the list is fetched again; 30 s when zero
	Client             *http.Client  // built from the options when nil
	Logger             *slog.Logger
}

// Kubelet discovers scrape targets among the pods the kubelet runs on this node.
type Kubelet struct {
	o   KubeletOptions
	hc  *http.Client
	log *slog.Logger

	mu      sync.Mutex
	targets []Target
	fetched time.Time
	failing bool
}

// NewKubelet validates o; it fetches nothing until Targets.
func NewKubelet(o KubeletOptions) (*Kubelet, error) {
	if _, err := ParseTarget(o.URL); err != nil {
		return nil, fmt.Errorf("kubelet URL: %w", err)
	}
	if o.Refresh <= 0 {
		o.Refresh = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	hc := o.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: o.InsecureSkipVerify}, //nolint:gosec // the operator's choice, documented
		}}
	}
	return &Kubelet{o: o, hc: hc, log: o.Logger}, nil
}

// Targets returns the discovered targets, fetching the pod list when the last fetch is older
// than Refresh. When a fetch fails, the previous targets are kept.
func (k *Kubelet) Targets(ctx context.Context) []Target {
	k.mu.Lock()
	defer k.mu.Unlock()
	if time.Since(k.fetched) < k.o.Refresh {
		return k.targets
	}
	k.fetched = time.Now()
	ts, err := k.fetch(ctx)
	if err != nil {
		if !k.failing {
			k.log.Warn("kubelet pod discovery failed; keeping the previous targets", "url", k.o.URL, "err", err)
		}
		k.failing = true
		return k.targets
	}
	if k.failing {
		k.log.Info("kubelet pod discovery recovered", "targets", len(ts))
	}
	k.failing = false
	k.targets = ts
	return ts
}

type podList struct {
	Items []struct {
		Metadata struct {
			Name        string            `json:"name"`
			Namespace   string            `json:"namespace"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Status struct {
			Phase string `json:"phase"`
			PodIP string `json:"podIP"`
		} `json:"status"`
	} `json:"items"`
}

func (k *Kubelet) fetch(ctx context.Context) ([]Target, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.o.URL, nil)
	if err != nil {
		return nil, err
	}
	if k.o.TokenFile != "" {
		tok, err := os.ReadFile(k.o.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := k.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return TargetsFromPods(io.LimitReader(resp.Body, 64<<20))
}

// TargetsFromPods reads a PodList (JSON, as the kubelet's /pods serves it) and returns a
// target for every running pod annotated prometheus.io/scrape: "true" with a pod IP and a
// prometheus.io/port. prometheus.io/path (default /metrics), prometheus.io/scheme (default
// http) and prometheus.io/job (default kubernetes-pods) are honoured.
func TargetsFromPods(r io.Reader) ([]Target, error) {
	var pl podList
	if err := json.NewDecoder(r).Decode(&pl); err != nil {
		return nil, fmt.Errorf("pod list: %w", err)
	}
	var out []Target
	for _, p := range pl.Items {
		an := p.Metadata.Annotations
		if an["prometheus.io/scrape"] != "true" || p.Status.Phase != "Running" || p.Status.PodIP == "" {
			continue
		}
		port, err := strconv.Atoi(an["prometheus.io/port"])
		if err != nil || port <= 0 || port > 65535 {
			continue
		}
		path := an["prometheus.io/path"]
		if path == "" {
			path = "/metrics"
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		scheme := an["prometheus.io/scheme"]
		if scheme != "https" {
			scheme = "http"
		}
		job := an["prometheus.io/job"]
		if job == "" {
			job = "kubernetes-pods"
		}
		host := net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port))
		out = append(out, Target{
			URL: scheme + "://" + host + path,
			Labels: []probe.Label{
				probe.L("instance", host), probe.L("job", job),
				probe.L("namespace", p.Metadata.Namespace), probe.L("pod", p.Metadata.Name),
			},
		}.withDefaults())
	}
	return out, nil
}
