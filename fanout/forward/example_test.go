package forward_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/eagle-eye-ai/eagle-eye/fanout/forward"
	"github.com/eagle-eye-ai/eagle-eye/ingest"
)

// A forwarder configured from a pasted Prometheus remote_write block. Without Run nothing is
// sent: the write waits in the queue on disk, and would be sent after a restart.
func Example() {
	cfg, err := forward.ParseConfig([]byte(`
remote_write:
  - url: http://127.0.0.1:9090/api/v1/write
    name: long-term
forward:
  defaults:
    max_queue_bytes: 64MiB
`))
	if err != nil {
		log.Fatal(err)
	}
	dir, _ := os.MkdirTemp("", "forward-example")
	defer os.RemoveAll(dir)
	fwd, err := forward.New(forward.Options{Config: cfg, Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer fwd.Close()
	// go fwd.Run(ctx) would start sending.

	req := &ingest.Request{Series: []ingest.Series{{
		Labels:  []ingest.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "probe"}},
		Samples: []ingest.Sample{{T: 1_700_000_000_000, V: 1}},
	}}}
	st, err := fwd.Write(context.Background(), req) // returns once the record is fsynced
	if err != nil {
		log.Fatal(err)
	}
	d := fwd.Status().Destinations[0]
	fmt.Println(st.Samples, d.Name, d.Queue.PendingSamples, d.Queue.Fsync)
	// Output: 1 long-term 1 always
}
