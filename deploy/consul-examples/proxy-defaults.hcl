# Mesh-wide defaults: speak HTTP between sidecars (Consul's default is tcp).
#   consul config write proxy-defaults.hcl
Kind = "proxy-defaults"
Name = "global"
Config {
  protocol = "http"
}
