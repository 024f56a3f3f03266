// Live output (PLUGIN_PROTOCOL.md §3): the host serves StatusHelperService on its side of
// go-plugin's broker and names it by a service id in ExecuteRequest.status_server.
package main

import (
	"context"
	"fmt"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	legacy "goecho/gen/types"
	typesv1 "goecho/gen/types/v1"
)

// liveOutput opens one execution's connection to the host's StatusHelperService.
type liveOutput struct {
	broker *plugin.GRPCBroker
	logger hclog.Logger
}

// open dials broker service `serviceID`. go-plugin's Dial waits up to 5 s for the host's
// ConnInfo (it travels on another stream than the Execute call) and consumes it, which is why
// Describe does not claim reusable_status_servers: the host announces a fresh id per call.
func (l *liveOutput) open(ctx context.Context, serviceID uint32) (*statusSink, error) {
	type dialed struct {
		conn *grpc.ClientConn
		err  error
	}
	done := make(chan dialed, 1)
	go func() {
		conn, err := l.broker.Dial(serviceID)
		done <- dialed{conn, err}
	}()
	select {
	case d := <-done:
		if d.err != nil {
			return nil, fmt.Errorf("broker service %d: %v", serviceID, d.err)
		}
		return &statusSink{conn: d.conn, v1: typesv1.NewStatusHelperServiceClient(d.conn)}, nil
	case <-ctx.Done():
		// Cancelled while waiting: close the connection if the dial still succeeds.
		go func() {
			if d := <-done; d.conn != nil {
				d.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// statusSink sends one execution's output chunks to the host.
type statusSink struct {
	conn *grpc.ClientConn
	v1   typesv1.StatusHelperServiceClient
	old  legacy.StatusHelperClient // set once the host answered UNIMPLEMENTED to the v1 name
}

// send delivers one chunk and waits for the host's answer: that wait is the backpressure that
// slows a job down to the host's pace instead of piling chunks up in memory.
func (s *statusSink) send(ctx context.Context, chunk []byte, isStderr bool) error {
	if s.old == nil {
		_, err := s.v1.Update(ctx, &typesv1.StatusUpdateRequest{Output: chunk, Error: isStderr})
		if status.Code(err) != codes.Unimplemented {
			return err
		}
		// A host older than Dkron 4.0.9 serves only types.StatusHelper.
		s.old = legacy.NewStatusHelperClient(s.conn)
	}
	_, err := s.old.Update(ctx, &legacy.StatusUpdateRequest{Output: chunk, Error: isStderr})
	return err
}

func (s *statusSink) close() { s.conn.Close() }
