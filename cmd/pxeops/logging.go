package main

import (
	"bufio"
	"io"
	"log/slog"
	"sync"
	"time"
)

// logFlushInterval bounds how long a log line may sit in the buffer.
const logFlushInterval = 100 * time.Millisecond

// bufferedLog batches log lines into few writes: at thousands of boot
// requests a second, one write system call per line costs more than
// answering the request. Lines reach the output within logFlushInterval,
// and Close flushes the rest; a killed process loses at most that much.
type bufferedLog struct {
	once sync.Once
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newBufferedLog(w io.Writer) *bufferedLog {
	b := &bufferedLog{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(logFlushInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.flush()
			case <-b.stop:
				b.flush()
				return
			}
		}
	}()
	return b
}

func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

func (b *bufferedLog) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.w.Flush()
}

// Close flushes what is buffered and stops the flusher; later writes go
// to the buffer and are lost. Closing again does nothing.
func (b *bufferedLog) Close() {
	b.once.Do(func() { close(b.stop) })
	<-b.done
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
