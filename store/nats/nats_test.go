package nats_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	hnats "github.com/hoodcloud/hoodcloud/store/nats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestEmbeddedBus(t *testing.T) {
	bus := openEmbedded(t, t.TempDir(), "")
	enginetest.RunEvents(t, bus, func(s string) string { return "T_" + s })
}

func TestExternalBus(t *testing.T) {
	url := testenv.NATSURL(t)
	bus := hnats.New(url)
	if err := bus.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer bus.Close()
	prefix := "T" + strings.ToUpper(engine.NewID("")[1:9])
	t.Cleanup(func() { deleteStreams(t, url, prefix) })
	enginetest.RunEvents(t, bus, func(s string) string { return prefix + "_" + s })
}

func TestEmbeddedStreamsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	bus := openEmbedded(t, dir, "")
	spec := engine.StreamSpec{Name: "KEEP", Subjects: []string{"keep.>"}}
	if err := bus.EnsureStream(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, "keep.a", "id-1", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	bus.Close()

	bus = openEmbedded(t, dir, "")
	var got string
	done := make(chan struct{})
	stop, err := bus.Consume(ctx, engine.ConsumerSpec{Stream: "KEEP", Durable: "reader"}, func(_ context.Context, m *engine.Message) engine.Ack {
		got = string(m.Data)
		close(done)
		return engine.AckDone
	})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	stop()
	if got != "kept" {
		t.Fatalf("after restart got %q, want the message published before", got)
	}
}

func TestEmbeddedListensOnlyWhenConfigured(t *testing.T) {
	quiet := openEmbedded(t, t.TempDir(), "")
	if u := quiet.ClientURL(); u != "" {
		t.Fatalf("ClientURL = %q, want no TCP listener by default", u)
	}
	loud := openEmbedded(t, t.TempDir(), "127.0.0.1:0")
	if u := loud.ClientURL(); !strings.HasPrefix(u, "nats://127.0.0.1:") {
		t.Fatalf("ClientURL = %q, want a loopback listener", u)
	}
}

func TestBadConfigurationIsRefused(t *testing.T) {
	if _, err := hnats.NewEmbedded(hnats.EmbeddedConfig{}); err == nil {
		t.Fatal("want an error for a missing store dir")
	}
	if _, err := hnats.NewEmbedded(hnats.EmbeddedConfig{StoreDir: t.TempDir(), Listen: "localhost:http2"}); err == nil {
		t.Fatal("want an error for a non-numeric port")
	}
	bus := hnats.New("nats://user:s3cret@127.0.0.1:1")
	err := bus.Open(context.Background())
	if !engine.IsCode(err, engine.EUnavailable) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open on a closed port = %v, want EUnavailable without the password", err)
	}
}

func openEmbedded(t *testing.T, dir, listen string) *hnats.EmbeddedBus {
	t.Helper()
	bus, err := hnats.NewEmbedded(hnats.EmbeddedConfig{StoreDir: dir, Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { bus.Close() })
	return bus
}

func deleteStreams(t *testing.T, url, prefix string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	names := js.StreamNames(context.Background())
	for name := range names.Name() {
		if strings.HasPrefix(name, prefix) {
			if err := js.DeleteStream(context.Background(), name); err != nil {
				t.Logf("cleanup %s: %v", name, err)
			}
		}
	}
}
