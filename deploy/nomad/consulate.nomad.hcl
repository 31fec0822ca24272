# Consulate on Nomad with Consul: the control plane as a service job
# group, and a workload whose Connect sidecar task is Consulate's sidecar
# instead of Envoy (sidecar_task overrides the task Nomad would inject).
#   nomad job run deploy/nomad/consulate.nomad.hcl
job "consulate" {
  datacenters = ["dc1"]
  type        = "service"

  group "control-plane" {
    count = 2

    network {
      port "xds" {
        static = 18000
      }
      port "admin" {
        static = 19000
      }
    }

    service {
      name = "consulate-control-plane"
      port = "xds"

      check {
        name     = "readyz"
        type     = "http"
        port     = "admin"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "control-plane" {
      driver = "docker"

      config {
        image = "consulate/control-plane:latest"
        ports = ["xds", "admin"]
        args = [
          "-consul-addr=${attr.unique.network.ip-address}:8500",
          "-xds-addr=0.0.0.0:18000",
          "-admin-addr=0.0.0.0:19000",
        ]
      }

      kill_timeout = "10s"

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }

  group "web" {
    count = 2

    network {
      mode = "bridge"
      port "http" {
        to = 8080
      }
    }

    service {
      name = "web"
      port = "8080"

      check {
        name     = "web HTTP"
        type     = "http"
        port     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
        expose   = false
      }

      # The sidecar's readiness: its admin endpoint listens on loopback
      # inside the allocation's network namespace, so a script check runs
      # `consulate-sidecar probe` (GET /ready, exit 0/1) in the sidecar
      # task, named connect-proxy-<service> by Nomad.
      check {
        name     = "sidecar ready"
        type     = "script"
        task     = "connect-proxy-web"
        command  = "/usr/local/bin/consulate-sidecar"
        args     = ["probe", "-admin-addr=127.0.0.1:19100"]
        interval = "10s"
        timeout  = "3s"
      }

      connect {
        sidecar_service {
          proxy {
            upstreams {
              destination_name = "api"
              local_bind_port  = 9191
            }
          }
        }

        # Consulate's sidecar in place of Envoy. Nomad registers the proxy
        # as <service ID>-sidecar-proxy, the service ID of a group service
        # without tags being _nomad-task-<alloc>-group-<group>-<name>-<port>.
        sidecar_task {
          driver = "docker"

          config {
            image = "consulate/sidecar:latest"
            args = [
              "-proxy-id=_nomad-task-${NOMAD_ALLOC_ID}-group-${NOMAD_GROUP_NAME}-web-8080-sidecar-proxy",
              "-control-plane=consulate-control-plane.service.consul:18000",
              "-admin-addr=127.0.0.1:19100",
            ]
          }

          kill_timeout = "15s"

          resources {
            cpu    = 100
            memory = 64
          }
        }
      }
    }

    task "web" {
      driver = "docker"

      config {
        image = "consulate/demo-app:latest"
        args = [
          "-name=web",
          "-version=v1",
          "-instance=${NOMAD_ALLOC_ID}",
          "-listen=0.0.0.0:8080",
          "-upstream=http://127.0.0.1:9191",
        ]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
