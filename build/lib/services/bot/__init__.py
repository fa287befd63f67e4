"""The Telegram face of Aisha: aiogram routers, the outgoing sender, FSM on NATS KV."""
