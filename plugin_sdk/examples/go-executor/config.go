// The executor_config keys goecho takes, parsed from the strings every executor_config holds;
// a bad value fails the execution with a message naming the key.
package main

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

const defaultMessage = "hello from go"

type jobConfig struct {
	message     string        // output, followed by a newline
	sleep       time.Duration // wait this long before finishing; a cancel ends it at once
	repeatBytes int64         // >= 0: output exactly this many bytes, the message line repeated
	repeat      bool          // whether repeat_bytes was given
	fail        bool          // "true": the execution fails with "failed as asked"
}

func parseConfig(config map[string]string) (jobConfig, error) {
	parsed := jobConfig{message: defaultMessage}
	for key, value := range config {
		switch key {
		case "message":
			parsed.message = value
		case "sleep_seconds":
			seconds, err := strconv.ParseFloat(value, 64)
			if err != nil || seconds < 0 || math.IsInf(seconds, 0) || math.IsNaN(seconds) {
				return parsed, fmt.Errorf("executor_config.sleep_seconds must be a number of seconds such as \"2.5\", not %q", value)
			}
			parsed.sleep = time.Duration(seconds * float64(time.Second))
		case "repeat_bytes":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				return parsed, fmt.Errorf("executor_config.repeat_bytes must be a whole number of bytes such as \"1024\", not %q", value)
			}
			parsed.repeatBytes, parsed.repeat = n, true
		case "fail":
			if value != "true" && value != "false" {
				return parsed, fmt.Errorf("executor_config.fail must be \"true\" or \"false\", not %q", value)
			}
			parsed.fail = value == "true"
		default:
			return parsed, fmt.Errorf("executor_config.%s is not a goecho key; it takes message, sleep_seconds, repeat_bytes and fail", key)
		}
	}
	return parsed, nil
}
