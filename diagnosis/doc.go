// Package diagnosis turns the alerts of the diagnosis rules (rules/*.rules.yml, evaluated by
// Prometheus' rules manager over the gateway's window) into reports that say what broke and
// what to do: one report per device and fault pattern, joined with the device's identity
// (UUID, serial, model, driver, firmware from its info series), the engines that run on it,
// and the catalog's conclusion, ordered handling steps and router action for that device's
// model, driver and firmware.
//
// It owns the catalog (LoadCatalog, Catalog.Lookup), the report lifecycle (firing → resolved,
// flap hold, suppression of patterns another one explains, retention), the
// eagle_eye_diagnosis_* metrics, the /api/v1/diagnoses handler, per-device states for routers,
// and validation of rule files (LoadRuleFiles, Reload). It does not evaluate PromQL itself,
// know NATS, or serve /api/v1/rules and /api/v1/alerts: the rules manager evaluates, a
// Publisher carries events, Prometheus' API serves rules and alerts.
//
// Alerts arrive through Notify, which has the signature of rules.NotifyFunc and is called by
// the manager after every evaluation of every alerting rule, with the firing alerts and the
// recently resolved ones (pending alerts are not sent). Only alerts with a `pattern` label are
// used. A report is keyed by the device (Report.Device, from the alert's labels: GPU UUID, NPU
// node+id, engine instance, network node+device+port) and the pattern; its evidence holds one
// entry per alert instance (rules of the same pattern and the `signal` label of each input).
//
// Goroutines: Notify runs on the manager's group goroutines, concurrently; it takes the
// diagnoser's one mutex, reads the Queryable for a new report's identity, and queues state
// changes without blocking (a full queue drops and counts). Run, one goroutine, hands queued
// events to the Publisher one at a time and periodically expires alerts that stopped being
// sent (a rule removed by a reload) and forgets resolved reports past their retention. Reports,
// DeviceStates and Handler may be called from any goroutine.
//
//	cat, err := diagnosis.LoadCatalog("rules/catalog.yaml")
//	d, err := diagnosis.New(diagnosis.Options{Catalog: cat, Queryable: window, Publisher: pub, Registerer: reg})
//	mgr := rules.NewManager(&rules.ManagerOptions{..., NotifyFunc: d.Notify})
//	err = d.Reload(mgr, diagnosis.RuleConfig{Files: []string{"rules/*.rules.yml"}, CatalogFile: "rules/catalog.yaml", Interval: 15 * time.Second})
//	go d.Run(ctx)
//	mux.Handle("/api/v1/diagnoses", d.Handler())
package diagnosis
