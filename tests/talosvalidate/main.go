// Command talosvalidate runs Talos's own machine-config validation, the one behind
// `talosctl validate --mode metal --strict`, over every file named on the command line.
//
// It prints one JSON object per file ({"file", "ok", "warnings", "error"}) and exits 1 when
// any file fails to load or validate. Built by the contract tests (and .ci/run) against the
// pkg/machinery module at the Talos version talenv.yaml renders; see go.mod.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
)

// metal is the runtime mode of a machine installed on bare metal: what talosctl's
// runtime.ModeMetal reports (that package is internal to talosctl, so it is restated here).
type metal struct{}

func (metal) String() string        { return "metal" }
func (metal) RequiresInstall() bool { return true }
func (metal) InContainer() bool     { return false }

type result struct {
	File     string   `json:"file"`
	OK       bool     `json:"ok"`
	Warnings []string `json:"warnings"`
	Error    string   `json:"error,omitempty"`
}

func validate(path string) result {
	out := result{File: path, Warnings: []string{}}
	cfg, err := configloader.NewFromFile(path)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	warnings, err := cfg.Validate(metal{}, validation.WithLocal(), validation.WithStrict())
	out.Warnings = append(out.Warnings, warnings...)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.OK = true
	return out
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: talosvalidate MACHINE-CONFIG...")
		os.Exit(2)
	}
	encoder := json.NewEncoder(os.Stdout)
	failed := false
	for _, path := range os.Args[1:] {
		res := validate(path)
		failed = failed || !res.OK
		if err := encoder.Encode(res); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if failed {
		os.Exit(1)
	}
}
