// PluginInfo/Describe (PLUGIN_PROTOCOL.md §5): a JSON Schema of goecho's executor_config, so the
// API validates jobs at save time, and the job configs horae-conformance runs it with.
package main

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/golang/protobuf/ptypes/empty"

	pluginv1 "goecho/gen/horae/plugin/v1"
)

var configSchema = map[string]interface{}{
	"$schema":              "https://json-schema.org/draft/2020-12/schema",
	"title":                "goecho executor",
	"type":                 "object",
	"additionalProperties": false,
	"properties": map[string]interface{}{
		"message": map[string]interface{}{
			"type":        "string",
			"title":       "Message",
			"description": "Text to output (a newline is added).",
			"default":     defaultMessage,
		},
		"sleep_seconds": map[string]interface{}{
			"type":        "string",
			"title":       "Sleep seconds",
			"description": "Wait this long before finishing; a cancelled execution stops at once.",
			"pattern":     `^[0-9]+(\.[0-9]+)?$`,
		},
		"repeat_bytes": map[string]interface{}{
			"type":        "string",
			"title":       "Repeat bytes",
			"description": "Output exactly this many bytes: the message line repeated.",
			"pattern":     "^[0-9]+$",
		},
		"fail": map[string]interface{}{
			"type":        "string",
			"title":       "Fail",
			"description": `"true" makes the execution fail.`,
			"enum":        []string{"true", "false"},
		},
	},
}

// conformanceConfigs: echo outputs the marker, sleep outlasts the 10 s the suite needs, flood
// writes 10 MiB.
var conformanceConfigs = map[string]map[string]string{
	"echo":  {"message": "horae-conformance"},
	"sleep": {"message": "horae-conformance: sleeping", "sleep_seconds": "30"},
	"flood": {
		"message":      "horae-conformance flood " + strings.Repeat(".", 79-len("horae-conformance flood ")),
		"repeat_bytes": "10485760",
	},
}

type pluginInfo struct{}

func (pluginInfo) Describe(context.Context, *empty.Empty) (*pluginv1.Description, error) {
	schema, err := json.Marshal(configSchema)
	if err != nil {
		return nil, err
	}
	configs := make(map[string]string, len(conformanceConfigs))
	for name, config := range conformanceConfigs {
		encoded, err := json.Marshal(config)
		if err != nil {
			return nil, err
		}
		configs[name] = string(encoded)
	}
	return &pluginv1.Description{
		Name:               pluginName,
		Kind:               "executor",
		Version:            version,
		ConfigSchemaJson:   string(schema),
		ConformanceConfigs: configs,
		// go-plugin's broker Dial consumes each announcement: one service id per call.
		ReusableStatusServers: false,
	}, nil
}
