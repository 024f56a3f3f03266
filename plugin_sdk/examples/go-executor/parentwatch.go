// Exiting with the host (PLUGIN_PROTOCOL.md §6): go-plugin does not watch its parent, so a
// plugin started by a host without a parent-death signal would outlive it.
package main

import (
	"os"
	"time"

	hclog "github.com/hashicorp/go-hclog"
)

const parentPollInterval = 500 * time.Millisecond

// exitWhenParentDies exits the process once it has been reparented (its parent pid changed).
func exitWhenParentDies(logger hclog.Logger) {
	parent := os.Getppid()
	for range time.Tick(parentPollInterval) {
		if os.Getppid() != parent {
			logger.Info("parent is gone; exiting", "parent_pid", parent)
			os.Exit(0)
		}
	}
}
