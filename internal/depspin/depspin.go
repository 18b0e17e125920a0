// Package depspin keeps modules in go.mod while their adapters are written.
// Temporary: removed once every module is imported by real code.
package depspin

import (
	_ "github.com/alicebob/miniredis/v2"
	_ "github.com/gin-gonic/gin"
	_ "github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/redis/go-redis/v9"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/crypto/argon2"
	_ "google.golang.org/grpc"
	_ "gopkg.in/yaml.v3"
)
