#!/bin/sh
# The bgp container's entry point, imitated: SONiC's supervisord.conf.j2 runs frrcfgd when
# DEVICE_METADATA|localhost has docker_routing_config_mode=unified and
# frr_mgmt_framework_config=true, and bgpcfgd otherwise; they read it only here, at start.
mode=$(redis-cli -n 4 HGET 'DEVICE_METADATA|localhost' docker_routing_config_mode)
framework=$(redis-cli -n 4 HGET 'DEVICE_METADATA|localhost' frr_mgmt_framework_config)
mkdir -p /run/supervisor
if [ "$mode" = unified ] && [ "$framework" = true ]; then
  echo "frrcfgd /usr/local/bin/frrcfgd" > /run/supervisor/programs
else
  echo "bgpcfgd /usr/local/bin/bgpcfgd" > /run/supervisor/programs
fi
exec supervisorctl start all >/dev/null
