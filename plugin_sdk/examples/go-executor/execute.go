// The job goecho runs for one Execute call: output the message (live, through the broker),
// optionally sleep, and answer; a cancelled call stops at once (PLUGIN_PROTOCOL.md §3).
package main

import (
	"context"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// call is an ExecuteRequest, whichever service name it came in by.
type call struct {
	jobName      string
	config       map[string]string
	statusServer uint32 // broker service id of the host's StatusHelper; 0: no live output
	executionID  string
	attempt      uint32
}

// result is an ExecuteResponse: error non-empty means the execution failed, and says why.
type result struct {
	output   []byte
	error    string
	exitCode int32
}

type executor struct {
	live   *liveOutput
	logger hclog.Logger
}

// execute runs one call. Many run at once (gRPC gives each its own goroutine); ctx ends when
// the host cancels the call (job timeout, stop, agent shutdown).
func (e *executor) execute(ctx context.Context, c call) (result, error) {
	logger := e.logger.With("job", c.jobName, "execution_id", c.executionID, "attempt", c.attempt)
	logger.Info("execute")
	config, err := parseConfig(c.config)
	if err != nil {
		logger.Warn("bad executor_config", "error", err.Error())
		return result{error: err.Error(), exitCode: 1}, nil
	}

	var sink *statusSink
	if c.statusServer != 0 {
		sink, err = e.live.open(ctx, c.statusServer)
		if err != nil && ctx.Err() == nil {
			// Live output is a view: the execution does not depend on it.
			logger.Warn("no live output", "error", err.Error())
		}
	}
	if sink != nil {
		defer sink.close()
	}

	kept := &tail{limit: outputTailBytes}
	outputChunks(config, func(chunk []byte) bool {
		if ctx.Err() != nil {
			return false
		}
		kept.add(chunk)
		if sink != nil {
			if err := sink.send(ctx, chunk, false); err != nil && ctx.Err() == nil {
				logger.Warn("Update failed; no more live output", "error", err.Error())
				sink.close()
				sink = nil
			}
		}
		return true
	})

	if config.sleep > 0 && ctx.Err() == nil {
		timer := time.NewTimer(config.sleep)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
		}
	}
	if ctx.Err() == context.DeadlineExceeded {
		// The call's deadline (the job's timeout) passed: answer as the host's own clock would.
		logger.Info("deadline exceeded")
		return result{}, status.Error(codes.DeadlineExceeded, "the call's deadline passed; stopped")
	}
	if ctx.Err() != nil {
		// The host has left this call: the answer is only for form's sake.
		logger.Info("cancelled")
		return result{}, status.Error(codes.Canceled, "cancelled by the host")
	}
	if config.fail {
		logger.Info("failed as asked")
		return result{output: kept.bytes(), error: "failed as asked", exitCode: 1}, nil
	}
	logger.Info("succeeded")
	return result{output: kept.bytes()}, nil
}
