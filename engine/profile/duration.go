package profile

import (
	"regexp"
	"strconv"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Duration is how long a node is bought for, as a profile names it: a count
// and a unit, d (days), w (weeks), m (months) or y (years), e.g. "1m", "12m".
type Duration string

var durationPattern = regexp.MustCompile(`^([1-9][0-9]{0,3})([dwmy])$`)

// ParseDuration checks s is a duration name.
func ParseDuration(s string) (Duration, error) {
	if !durationPattern.MatchString(s) {
		return "", engine.Errorf(engine.EInvalid, "duration %q is not a count and a unit (d, w, m, y), e.g. \"3m\"", s)
	}
	return Duration(s), nil
}

// Expiry is when a subscription of this duration that starts at from ends.
// Months and years follow the calendar (time.AddDate).
func (d Duration) Expiry(from time.Time) (time.Time, error) {
	n, unit, err := d.split()
	if err != nil {
		return time.Time{}, err
	}
	switch unit {
	case 'd':
		return from.AddDate(0, 0, n), nil
	case 'w':
		return from.AddDate(0, 0, 7*n), nil
	case 'm':
		return from.AddDate(0, n, 0), nil
	default:
		return from.AddDate(n, 0, 0), nil
	}
}

// approxDays orders durations; it is not used for expiry.
func (d Duration) approxDays() int {
	n, unit, err := d.split()
	if err != nil {
		return 0
	}
	return n * map[byte]int{'d': 1, 'w': 7, 'm': 30, 'y': 365}[unit]
}

func (d Duration) split() (int, byte, error) {
	m := durationPattern.FindStringSubmatch(string(d))
	if m == nil {
		return 0, 0, engine.Errorf(engine.EInvalid, "duration %q is not a count and a unit (d, w, m, y), e.g. \"3m\"", string(d))
	}
	n, _ := strconv.Atoi(m[1]) // at most four digits: cannot fail
	return n, m[2][0], nil
}
