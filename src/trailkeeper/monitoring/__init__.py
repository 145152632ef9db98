"""Monitoring (issue #11): the filter-pattern language (`filterpattern`), the CIS monitoring
controls (`cis`), metric aggregation (`metrics`) and alarm evaluation (`alarms`). Pure
modules first; log groups, forwarding and the CloudWatch APIs are wired onto them."""
