// Package rules holds the diagnosis rule files (Prometheus format, one file per area), their
// promtool unit tests and the fault catalog, and embeds the rule files and the catalog so that
// a binary can run without them on disk:
//
//	if err := os.CopyFS(dir, rules.FS); err != nil { ... } // then load dir/*.rules.yml
//
// Files: gpu, npu, engine, network, anomaly and recording rules (*.rules.yml), each with a
// *.test.yml for `promtool test rules`; catalog.yaml maps each rule's `pattern` label to a
// conclusion, handling steps and a router action. The package's test runs `promtool check rules`
// and `promtool test rules` on every file.
package rules

import "embed"

// FS holds *.rules.yml and catalog.yaml. It is read-only.
//
//go:embed *.rules.yml catalog.yaml
var FS embed.FS
