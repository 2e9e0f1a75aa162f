package store_test

import "time"

func timeAt(sec int) time.Time { return time.Date(2025, 11, 25, 15, 0, sec, 0, time.UTC) }
