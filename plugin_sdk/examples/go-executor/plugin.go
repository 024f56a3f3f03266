// The go-plugin plugin: registers the executor (under Dkron's current and pre-4.0.9 service
// names, PLUGIN_PROTOCOL.md §3) and PluginInfo (§5) on the gRPC server go-plugin runs.
package main

import (
	"context"
	"errors"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "goecho/gen/horae/plugin/v1"
	legacy "goecho/gen/types"
	typesv1 "goecho/gen/types/v1"
)

// executorPlugin is the plugin go-plugin serves; it has no net/rpc side.
type executorPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	logger hclog.Logger
}

func (p *executorPlugin) GRPCServer(broker *plugin.GRPCBroker, server *grpc.Server) error {
	e := &executor{live: &liveOutput{broker: broker, logger: p.logger}, logger: p.logger}
	typesv1.RegisterExecutorServiceServer(server, v1Executor{e})
	legacy.RegisterExecutorServer(server, legacyExecutor{e})
	pluginv1.RegisterPluginInfoServer(server, pluginInfo{})
	return nil
}

// GRPCClient is the host's side, which this binary never is.
func (p *executorPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, errors.New("horae-executor-goecho is a plugin, not a host")
}

// v1Executor serves types.v1.ExecutorService (Dkron >= 4.0.9, what horae calls first).
type v1Executor struct{ e *executor }

func (s v1Executor) Execute(ctx context.Context, req *typesv1.ExecuteRequest) (*typesv1.ExecuteResponse, error) {
	result, err := s.e.execute(ctx, call{
		jobName:      req.JobName,
		config:       req.Config,
		statusServer: req.StatusServer,
		executionID:  req.ExecutionId,
		attempt:      req.Attempt,
	})
	if err != nil {
		return nil, err
	}
	return &typesv1.ExecuteResponse{Output: result.output, Error: result.error, ExitCode: result.exitCode}, nil
}

// legacyExecutor serves types.Executor, the name Dkron used before 4.0.9; same messages.
type legacyExecutor struct{ e *executor }

func (s legacyExecutor) Execute(ctx context.Context, req *legacy.ExecuteRequest) (*legacy.ExecuteResponse, error) {
	result, err := s.e.execute(ctx, call{
		jobName:      req.JobName,
		config:       req.Config,
		statusServer: req.StatusServer,
		executionID:  req.ExecutionId,
		attempt:      req.Attempt,
	})
	if err != nil {
		return nil, err
	}
	return &legacy.ExecuteResponse{Output: result.output, Error: result.error, ExitCode: result.exitCode}, nil
}
