package diagnosis_test

import (
	"fmt"

	"github.com/eagle-eye-ai/eagle-eye/diagnosis"
)

func ExampleCatalog_Lookup() {
	cat, err := diagnosis.LoadCatalog("../rules/catalog.yaml")
	if err != nil {
		panic(err)
	}
	for _, dev := range []diagnosis.DeviceInfo{
		{Model: "NVIDIA A100-SXM4-80GB", Driver: "525.85.12"},
		{Model: "NVIDIA H100 80GB HBM3", Driver: "550.54.15"},
	} {
		a, _ := cat.Lookup("G06", dev)
		fmt.Println(a.RouterAction, a.Overrides, a.Steps[len(a.Steps)-1])
	}
	// Output:
	// unroutable [gsp-before-r535] Upgrade the driver to R535 or later; until then, disable GSP firmware offload (NVreg_EnableGpuFirmware=0) on this node.
	// unroutable [gsp-r535-plus] For XID 119/120, check the GSP firmware log in nvidia-bug-report and the driver's release notes before escalating.
}
