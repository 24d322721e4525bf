"""Operations tools: doctor, compare, replay, systemd units, the demo."""
