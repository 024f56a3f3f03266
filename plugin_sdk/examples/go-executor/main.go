// Command horae-executor-goecho is an example horae executor plugin written in Go with HashiCorp's
// go-plugin (Debian's 1.0.1), to show that a go-plugin plugin runs under horae as it is.
//
// go-plugin does most of PLUGIN_PROTOCOL.md for us: the handshake line (§1), the health service,
// the broker and GRPCController/Shutdown (§2). This file adds what horae asks beyond it: either
// of two magic cookies, a refusal when no protocol version is in common, the socket directory
// the host chose, and exiting when the parent dies (§6).
package main

import (
	"fmt"
	"os"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

const (
	pluginName = "goecho"
	version    = "0.1.0"
	// The only executor protocol version this plugin speaks (§1).
	appProtocolVersion = 1
	// §3: host and plugins allow messages up to 64 MiB both ways.
	maxMessageBytes = 64 * 1024 * 1024
)

func main() {
	cookieKey, cookieValue, ok := hostCookie(os.Getenv)
	if !ok {
		refuse("this is a horae plugin; it is started by `horae agent`, not by hand " +
			"(try `horae plugins list --plugin-dir <dir>` or `horae-conformance executor -- <this file>`)")
	}
	if problem := versionProblem(os.Getenv("PLUGIN_PROTOCOL_VERSIONS")); problem != "" {
		refuse(problem)
	}
	// go-plugin 1.0.1 creates its unix socket in os.TempDir(); newer hosts name the directory.
	if dir := os.Getenv("PLUGIN_UNIX_SOCKET_DIR"); dir != "" {
		os.Setenv("TMPDIR", dir)
	}

	// After the handshake go-plugin points os.Stderr at a pipe nobody reads in gRPC mode: log
	// through this logger, bound to the real stderr now. The host parses hclog's JSON lines.
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       pluginName,
		Level:      hclog.Info,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	if os.Getenv("PLUGIN_CLIENT_CERT") != "" {
		logger.Warn("AutoMTLS requested: go-plugin answers with a P-521 certificate, which grpcio-based hosts refuse")
	}
	go exitWhenParentDies(logger)

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  appProtocolVersion,
			MagicCookieKey:   cookieKey,
			MagicCookieValue: cookieValue,
		},
		Plugins:    plugin.PluginSet{"executor": &executorPlugin{logger: logger}},
		GRPCServer: newGRPCServer,
		Logger:     logger,
	})
	logger.Info("stopped")
}

// newGRPCServer is go-plugin's default server with horae's message size limit.
func newGRPCServer(options []grpc.ServerOption) *grpc.Server {
	options = append(options, grpc.MaxRecvMsgSize(maxMessageBytes), grpc.MaxSendMsgSize(maxMessageBytes))
	return grpc.NewServer(options...)
}

// refuse explains on stderr why the plugin will not start, and exits 1 with nothing on stdout.
func refuse(message string) {
	fmt.Fprintf(os.Stderr, "%s: %s\n", pluginName, message)
	os.Exit(1)
}
