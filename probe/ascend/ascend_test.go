package ascend

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/eagle-eye-ai/eagle-eye/probe"
)

func TestParseFixture(t *testing.T) {
	out, err := os.ReadFile("testdata/npu-smi-info.txt")
	if err != nil {
		t.Fatal(err)
	}
	c := New(Options{Run: func(context.Context) ([]byte, error) { return out, nil }})
	a := probe.NewAppender(time.Now())
	if err := c.Collect(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, s := range a.Series() {
		id := ""
		for _, l := range s.Labels {
			if l.Name == "id" {
				id = l.Value
			}
			if l.Name == "model_name" && l.Value != "Ascend910B3" {
				t.Errorf("model_name %q", l.Value)
			}
		}
		got[s.Name()+"/"+id] = s.Samples[0].V
	}
	for k, want := range map[string]float64{
		"npu_chip_info_health_status/0":    1,
		"npu_chip_info_health_status/2":    0, // Critical
		"npu_chip_info_health_status/3":    0, // Warning
		"npu_chip_info_power/1":            181.6,
		"npu_chip_info_temperature/3":      61,
		"npu_chip_info_utilization/1":      87,
		"npu_chip_info_hbm_used_memory/1":  52410, // "52410/ 65536"
		"npu_chip_info_hbm_total_memory/3": 65536,
	} {
		if g, ok := got[k]; !ok || g != want {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, want)
		}
	}
	if _, ok := got["npu_chip_info_used_memory/0"]; ok {
		t.Error("DDR total 0 must not be reported")
	}
	if _, ok := got["npu_chip_info_health_status/4"]; ok {
		t.Error("the process table was read as chips")
	}
}

func TestNoNpuSmi(t *testing.T) {
	c := New(Options{Command: "npu-smi-absent-here"})
	err := c.Collect(context.Background(), probe.NewAppender(time.Now()))
	if !errors.Is(err, probe.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestParseGarbage(t *testing.T) {
	if _, err := Parse([]byte("command not found\n")); err == nil {
		t.Error("no rows accepted")
	}
}
