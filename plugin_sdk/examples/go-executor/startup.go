// The checks a plugin makes before it serves anything (PLUGIN_PROTOCOL.md §1): was it started by
// a host, and does that host speak its protocol version.
package main

import (
	"fmt"
	"strconv"
	"strings"
)

// The cookies a host sets to prove it started the plugin: horae's own, and Dkron's (set for
// executables named dkron-executor-*), so this plugin runs under either.
var hostCookies = []struct{ key, value string }{
	{"HORAE_PLUGIN_MAGIC_COOKIE", "3519a2969fb7abd91918c591e84ad12573068e2fa2ea483ab1653bb69fa00bc9"},
	{"DKRON_PLUGIN_MAGIC_COOKIE", "b29a76488b6f3ca7955c5f769b50641f0fcd88748d8cedecda313d516320ca19"},
}

// hostCookie returns the cookie the host set, which go-plugin then checks again itself.
func hostCookie(getenv func(string) string) (key, value string, ok bool) {
	for _, cookie := range hostCookies {
		if getenv(cookie.key) == cookie.value {
			return cookie.key, cookie.value, true
		}
	}
	return "", "", false
}

// versionProblem says why the host's PLUGIN_PROTOCOL_VERSIONS rules this plugin out, or "".
// go-plugin alone would answer its own version anyway and leave the refusal to the host; the
// protocol asks the plugin to say so itself. An unset list means "whatever you speak".
func versionProblem(offered string) string {
	if strings.TrimSpace(offered) == "" {
		return ""
	}
	for _, field := range strings.Split(offered, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(field)); err == nil && v == appProtocolVersion {
			return ""
		}
	}
	return fmt.Sprintf("the host offers executor protocol version(s) %s; this plugin speaks only version %d",
		offered, appProtocolVersion)
}
